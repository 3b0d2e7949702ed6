"""``sentinel42 bench backtest``: how long a backtest over a universe takes, and its memory.

One case, in a fresh process (:func:`~sentinel42.bench.measure.run_isolated`: its peak RSS is
its own): :func:`~sentinel42.backtest.run_backtest` of the first ``--tickers`` tickers (by name)
that the replay folder holds, over ``--start`` .. ``--end`` at ``--cadence``, into an empty work
folder, exactly as ``sentinel42 backtest`` runs it (the live refresh, decide and portfolio at
every step). The figures: seconds in all (the process, imports and the first backfill
included) and of the steps alone, per step and per ticker-step, CPU seconds, the peak RSS, and
the machine's load before and after (the figures are only as quiet as the machine was).

The issue's targets (issue 17, item 7), on 2 cores: 500 tickers x 3 months at one step a
session within 15 minutes, 100 tickers x 1 month of 15-minute steps within 30 minutes.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentinel42.bench.measure import machine, run_isolated
from sentinel42.errors import ConfigError

Progress = Callable[[str], None]
# (cadence, tickers, sessions) -> seconds: the targets.
TARGETS: dict[str, dict[str, Any]] = {
    "session": {"tickers": 500, "months": 3, "seconds": 900.0},
    "bar": {"tickers": 100, "months": 1, "seconds": 1800.0},
}


def chosen_tickers(replay_dir: Path, count: int, interval: str = "15m") -> list[str]:
    """The first ``count`` tickers (by name) the replay folder's price files hold.

    Raises:
        ConfigError: the folder holds fewer.
    """
    from sentinel42.market.replay import ReplayPriceSource

    held, _problems = ReplayPriceSource(replay_dir, interval).held_tickers()
    if len(held) < count:
        raise ConfigError(
            f"--tickers {count}: the replay folder {replay_dir} holds {len(held)} ticker(s)"
        )
    return held[:count]


def backtest_case(
    replay_dir: str,
    tickers: list[str],
    start: str,
    end: str,
    cadence: str,
    use_model: bool,
    workdir: str,
    progress: Progress | None = None,
    models: list[str] | None = None,
    ungated: bool = False,
) -> dict[str, Any]:
    """One backtest (run in a fresh process by :func:`bench_backtest`): its timing and counts."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    from sentinel42.backtest import backtest_settings, parse_bound, run_backtest
    from sentinel42.factory import build_calendar

    settings = backtest_settings(Path(replay_dir), Path(workdir), tickers)
    calendar = build_calendar(settings)
    result = run_backtest(
        settings,
        parse_bound(start, calendar, end=False),
        parse_bound(end, calendar, end=True),
        use_model=use_model,
        cadence=cadence,
        progress=progress,
        models=models or ["direction"],
        ungated=ungated,
    )
    summary = result.summary
    return {
        "steps": summary["steps"],
        "sessions": summary["sessions"],
        "first_step": summary["first_step"],
        "last_step": summary["last_step"],
        "n_decisions": summary["n_decisions"],
        "n_trades": summary["n_trades"],
        "models_trained": summary["models_trained"],
        "models_traded": summary["models_traded"],
        "trainings_s": round(sum(t.get("train_s") or 0.0 for t in summary["trainings"]), 1),
        # The trading figures too, so one timed run also gives them (see docs/backtest.md).
        "figures": {
            k: summary[k]
            for k in (
                "total_return",
                "buy_and_hold_return",
                "market_return",
                "excess_return_vs_market",
                "turnover",
                "sharpe",
                "max_drawdown",
                "n_buy",
                "n_sell",
                "n_with_model",
            )
        },
        "steps_s": summary["timing"]["seconds"],
        "case_wall_s": round(time.perf_counter() - wall0, 3),
        "case_cpu_s": round(time.process_time() - cpu0, 3),
    }


def bench_backtest(
    replay_dir: Path,
    tickers: int,
    start: str,
    end: str,
    *,
    cadence: str = "bar",
    use_model: bool = False,
    timeout_s: float = 3600,
    models: list[str] | None = None,
    ungated: bool = False,
    keep: Path | None = None,
) -> dict[str, Any]:
    """Time one backtest in a fresh process; see the module. ``keep``: an empty or new folder
    that keeps the backtest's store and models (for ``sentinel42 validate`` on them); default a
    temporary folder, removed.

    Raises:
        ConfigError: an unknown cadence, fewer tickers in the folder than asked for, or a
            ``keep`` folder that is not empty.
    """
    from sentinel42.backtest import CADENCES

    if cadence not in CADENCES:
        raise ConfigError(f"--cadence: {cadence!r} is not one of {', '.join(CADENCES)}")
    names = chosen_tickers(replay_dir, tickers)
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise ConfigError(f"--workdir {keep} is not empty (a backtest starts from an empty store)")
    before = machine()
    with tempfile.TemporaryDirectory(prefix="sentinel42-bench-backtest-") as tmp:
        case = run_isolated(
            "sentinel42.bench.backtest:backtest_case",
            {
                "replay_dir": str(replay_dir.absolute()),
                "tickers": names,
                "start": start,
                "end": end,
                "cadence": cadence,
                "use_model": use_model,
                "workdir": str(keep.absolute() if keep else Path(tmp) / "work"),
                "models": models or ["direction"],
                "ungated": ungated,
            },
            timeout_s=timeout_s,
        )
    after = machine()
    total = float(case["process"]["wall_s"])
    steps = int(case["steps"])
    ticker_steps = steps * len(names)
    return {
        "replay_dir": str(replay_dir),
        "tickers": len(names),
        "first_ticker": names[0],
        "last_ticker": names[-1],
        "start": start,
        "end": end,
        "cadence": cadence,
        "use_model": use_model,
        "models": (models or ["direction"]) if use_model else [],
        "ungated": ungated,
        "steps": steps,
        "sessions": case["sessions"],
        "ticker_steps": ticker_steps,
        "total_s": round(total, 3),
        "steps_s": case["steps_s"],
        "cpu_s": case["case_cpu_s"],
        "per_step_s": round(total / steps, 4),
        "per_ticker_step_ms": round(1000 * total / ticker_steps, 4),
        "peak_rss_mb": case["process"]["peak_rss_mb"],
        "n_decisions": case["n_decisions"],
        "n_trades": case["n_trades"],
        "models_trained": case["models_trained"],
        "models_traded": case["models_traded"],
        "trainings_s": case["trainings_s"],
        "figures": case["figures"],
        "target": TARGETS[cadence],
        "machine": {"before": before, "after": after},
    }


def lines(doc: dict[str, Any]) -> list[str]:
    """The human report of :func:`bench_backtest`."""
    load = (doc["machine"]["before"]["load_avg_1_5_15"], doc["machine"]["after"]["load_avg_1_5_15"])
    target = doc["target"]
    return [
        f"backtest of {doc['tickers']} tickers ({doc['first_ticker']} .. {doc['last_ticker']}), "
        f"{doc['start']} .. {doc['end']}, cadence {doc['cadence']}, "
        + (
            f"models {','.join(doc['models'])}{' (ungated)' if doc['ungated'] else ''}"
            if doc["models"]
            else "without a model"
        ),
        f"  steps {doc['steps']} over {doc['sessions']} sessions, "
        f"{doc['ticker_steps']} ticker-steps, {doc['n_decisions']} decisions, "
        f"{doc['n_trades']} trades, {doc['models_trained']} models trained "
        f"({doc['trainings_s']:.0f} s training), {doc['models_traded']} traded",
        "  figures: " + ", ".join(f"{k} {v}" for k, v in doc["figures"].items()),
        f"  total {doc['total_s']:.1f} s (steps alone {doc['steps_s']:.1f} s, CPU "
        f"{doc['cpu_s']:.1f} s), per step {doc['per_step_s']:.3f} s, per ticker-step "
        f"{doc['per_ticker_step_ms']:.3f} ms, peak RSS {doc['peak_rss_mb']:.0f} MiB",
        f"  machine: {doc['machine']['before']['cores']} cores, load (1/5/15 min) before "
        f"{load[0]}, after {load[1]}",
        f"  target ({doc['cadence']} cadence): {target['tickers']} tickers x "
        f"{target['months']} month(s) within {target['seconds']:.0f} s",
    ]


__all__ = ["TARGETS", "backtest_case", "bench_backtest", "chosen_tickers", "lines"]
