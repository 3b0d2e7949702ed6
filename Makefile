# Sentinel42 — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# uv on the PATH, else where `pip install --user uv` puts it, else as a module of python3.
UV ?= $(shell command -v uv 2>/dev/null || { [ -x "$(HOME)/.local/bin/uv" ] && echo "$(HOME)/.local/bin/uv"; } || echo "python3 -m uv")
PYTEST_ARGS ?=

.PHONY: help
help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

.PHONY: install
install: ## Install uv if missing, then the locked environment (.venv), compiled to bytecode once
	@command -v uv >/dev/null 2>&1 || [ -x "$(HOME)/.local/bin/uv" ] || python3 -m uv --version >/dev/null 2>&1 || { \
		echo "uv not found: installing it with pip (python3 -m pip install --user uv)"; \
		python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv \
		|| python3 -m pip install --user --quiet --break-system-packages uv; }
	@UV=$$(command -v uv 2>/dev/null || { [ -x "$(HOME)/.local/bin/uv" ] && echo "$(HOME)/.local/bin/uv"; } || echo "python3 -m uv"); \
		$$UV sync --frozen --compile-bytecode \
		&& $$UV run --frozen python -m compileall -q -j 0 src flows >/dev/null \
		&& echo "installed: run commands with 'uv run ...' (uv: $$UV)"

.PHONY: test
test: ## Unit and integration tests (no network; excludes e2e and slow)
	$(UV) run --frozen pytest -q $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: ## End-to-end tests through a real Prefect server and worker
	$(UV) run --frozen pytest -q -m 'e2e and not postgres' $(PYTEST_ARGS)

.PHONY: test-postgres
test-postgres: ## Store tests and one end-to-end run on PostgreSQL (SENTINEL42_TEST_POSTGRES_URL; scripts/ci_postgres.sh)
	$(UV) run --frozen pytest -q -m postgres $(PYTEST_ARGS)

.PHONY: test-slow
test-slow: ## Heavier tests (model training on real recordings)
	$(UV) run --frozen pytest -q -m slow $(PYTEST_ARGS)

.PHONY: lint
lint: ## ruff (lint + format check), mypy and the import layers (lint-imports)
	$(UV) run --frozen ruff check src flows tests scripts
	$(UV) run --frozen ruff format --check src flows tests scripts
	$(UV) run --frozen mypy
	$(UV) run --frozen lint-imports

.PHONY: format
format: ## Apply ruff's formatting and safe fixes
	$(UV) run --frozen ruff format src flows tests scripts
	$(UV) run --frozen ruff check --fix src flows tests scripts

.PHONY: prefect-start
prefect-start: ## Start server (:4200), pool, deployments and worker; returns when all are up
	@scripts/start_prefect.sh

.PHONY: prefect-stop
prefect-stop: ## Stop the worker and server that prefect-start started
	@scripts/stop_prefect.sh

.PHONY: prefect-status
prefect-status: ## Show server, worker and deployments
	@scripts/status_prefect.sh

.PHONY: prefect-ui
prefect-ui: ## Print the dashboard URL (and open it where a browser exists)
	@url="http://$${SENTINEL42_PREFECT_HOST:-127.0.0.1}:$${SENTINEL42_PREFECT_PORT:-4200}"; \
		echo "Dashboard: $$url"; \
		if command -v xdg-open >/dev/null 2>&1 && [ -n "$${DISPLAY:-}$${WAYLAND_DISPLAY:-}" ]; then xdg-open "$$url" >/dev/null 2>&1 & \
		elif command -v open >/dev/null 2>&1 && [ "$$(uname)" = Darwin ]; then open "$$url"; fi

# systemd: SYSTEMD_USER=1 for per-user units; SYSTEMD_RUN_AS=USER (default: the checkout's owner).
UNITDIR ?=
SYSTEMD_USER ?=
SYSTEMD_RUN_AS ?=
SYSTEMD_ARGS = $(if $(filter 1 yes true,$(SYSTEMD_USER)),--user) $(SYSTEMD_RUN_AS)

.PHONY: systemd-units
systemd-units: ## Write the rendered systemd units into UNITDIR (make systemd-units UNITDIR=DIR)
	@test -n "$(UNITDIR)" || { echo "usage: make systemd-units UNITDIR=DIR [SYSTEMD_USER=1] [SYSTEMD_RUN_AS=USER]" >&2; exit 2; }
	@scripts/install_systemd.sh --render "$(UNITDIR)" $(SYSTEMD_ARGS)

.PHONY: install-systemd
install-systemd: ## Install, enable and start the systemd units (sudo; SYSTEMD_USER=1: per-user)
	@scripts/install_systemd.sh $(SYSTEMD_ARGS)

.PHONY: replay
replay: ## Generate a synthetic replay folder in ./replay (offline mode)
	$(UV) run --frozen sentinel42 replay generate --out replay

.PHONY: figures-ranking
figures-ranking: ## Ranking models' evidence on ../shared/data (S&P 500 daily and 15-minute, StockNet): markdown tables
	UV="$(UV)" $(UV) run --frozen python scripts/figures/ranking_evidence.py

# Every figure the docs quote, each set under a heading: the scripts/figures/*.py (not the _helpers),
# --quick where a script has it, then the bench commands and scripts/bench_universe.py. Slow
# (the universe backtests alone take about an hour and a half); not part of make test or CI. Data sets absent
# from SHARED_DATA are skipped by the scripts that need them; a failing command is named at the end.
SHARED_DATA ?= ../shared/data

.PHONY: docs-figures
docs-figures: ## Print every figure the docs quote (scripts/figures/*.py --quick, then the benches; slow)
	@failed=""; \
	for f in scripts/figures/[!_]*.py; do \
		args=""; grep -q '"--quick"' "$$f" && args="--quick"; \
		printf '\n## %s %s\n\n' "$$f" "$$args"; \
		UV="$(UV)" $(UV) run --frozen python "$$f" $$args || failed="$$failed $$f"; \
	done; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; data=$$(realpath -m $(SHARED_DATA))/universe; \
	mkdir -p "$$tmp/both/daily" "$$tmp/both/prices" "$$tmp/daily/daily" "$$tmp/15m/prices" "$$tmp/15m/news"; \
	for d in both daily; do ln -s "$$data/sp500_daily_2013-02-08_2018-02-07.csv.gz" "$$tmp/$$d/daily/sp500.csv.gz"; done; \
	for d in both 15m; do ln -s "$$data/sp500_15m_2026-01-26_2026-03-31.csv.gz" "$$tmp/$$d/prices/sp500.csv.gz"; done; \
	bench() { printf '\n## %s\n\n' "$$*"; env "$$@" || failed="$$failed [$$*]"; }; \
	bench $(UV) run --frozen pytest -q tests/model/test_real_data.py -m slow -s; \
	git show d0fbefe:src/sentinel42/sentiment/data/fallback.npz > "$$tmp/fallback_first.npz" \
		&& bench $(UV) run --frozen python scripts/train_fallback_sentiment.py --evaluate --compare "$$tmp/fallback_first.npz"; \
	bench $(UV) run --frozen sentinel42 bench refresh --tickers 500; \
	bench $(UV) run --frozen sentinel42 bench sentiment; \
	bench $(UV) run --frozen sentinel42 bench model; \
	for n in 10 50 500; do bench $(UV) run --frozen sentinel42 bench cycle --tickers $$n; done; \
	bench SENTINEL42_SENTIMENT_QUANTIZE=true $(UV) run --frozen sentinel42 bench cycle --tickers 50 --no-naive; \
	bench SENTINEL42_SENTIMENT_QUANTIZE=true $(UV) run --frozen sentinel42 bench cycle --tickers 500 --no-naive; \
	if [ -e "$$tmp/both/daily/sp500.csv.gz" ] && [ -e "$$tmp/both/prices/sp500.csv.gz" ]; then \
		bench $(UV) run --frozen python scripts/bench_universe.py "$$tmp/daily" daily; \
		bench $(UV) run --frozen python scripts/bench_universe.py "$$tmp/15m" intraday; \
		bench $(UV) run --frozen sentinel42 bench ranking --replay-dir "$$tmp/both"; \
		bench $(UV) run --frozen sentinel42 bench backtest --replay-dir "$$tmp/15m" --tickers 484 --start 2026-01-26 --end 2026-03-31 --cadence session; \
		bench $(UV) run --frozen sentinel42 bench backtest --replay-dir "$$tmp/15m" --tickers 100 --start 2026-03-02 --end 2026-03-31 --cadence bar; \
		bench $(UV) run --frozen sentinel42 bench backtest --replay-dir "$$tmp/15m" --tickers 484 --start 2026-01-26 --end 2026-03-31 --cadence session --model --models intraday --ungated; \
		bench $(UV) run --frozen sentinel42 bench backtest --replay-dir "$$tmp/15m" --tickers 100 --start 2026-03-02 --end 2026-03-31 --cadence bar --model --models intraday --ungated --workdir "$$tmp/w100"; \
		first100=$$($(UV) run --frozen python -c 'import sys; from pathlib import Path; from sentinel42.bench.backtest import chosen_tickers; print(",".join(chosen_tickers(Path(sys.argv[1]), 100)))' "$$tmp/15m"); \
		bench SENTINEL42_DATA_SOURCE=replay SENTINEL42_REPLAY_DIR="$$tmp/15m" SENTINEL42_DATABASE_URL="sqlite:///$$tmp/w100/backtest.db" SENTINEL42_DATA_DIR="$$tmp/w100" SENTINEL42_TICKERS="$$first100" SENTINEL42_REPLAY_AS_OF=2026-03-31T21:00:00+00:00 $(UV) run --frozen sentinel42 validate --json; \
	else printf '\n## bench_universe, bench ranking, bench backtest: skipped, no S&P 500 files in %s\n' "$$data"; fi; \
	printf '\n## bench trigger: not run here, it needs a running stack (docs/benchmarks.md)\n'; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

.PHONY: bench
bench: ## Run the benchmarks and print figures
	$(UV) run --frozen sentinel42 bench refresh --tickers 500
	$(UV) run --frozen sentinel42 bench sentiment
	$(UV) run --frozen sentinel42 bench model
	$(UV) run --frozen sentinel42 bench ranking
	for n in 10 50 500; do $(UV) run --frozen sentinel42 bench cycle --tickers $$n || exit 1; done
