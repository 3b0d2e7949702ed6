"""CLI commands of the model stage: ``model train|evaluate|list`` and ``bench model``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from sentinel42.cli.common import emit_json, fail, get_settings, user_errors

if TYPE_CHECKING:
    from sentinel42.settings import Settings

_METRICS = ("accuracy", "log_loss", "brier", "ic", "n")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _table(document: dict[str, Any]) -> str:
    """Model and baselines, one row each, then one line per walk-forward fold."""
    lines = [f"{'':<12}" + "".join(f"{k:>10}" for k in _METRICS)]
    rows = [("model", document["model"]), *document["baselines"].items()]
    for name, m in rows:
        lines.append(f"{name:<12}" + "".join(f"{_fmt(m.get(k)):>10}" for k in _METRICS))
    for fold in document.get("folds", []):
        best = max(fold["baselines"].values(), key=lambda b: b["accuracy"])
        lines.append(
            f"fold {fold['fold']}: model accuracy {_fmt(fold['model']['accuracy'])} "
            f"log_loss {_fmt(fold['model']['log_loss'])} ic {_fmt(fold['model']['ic'])}; "
            f"best baseline accuracy {_fmt(best['accuracy'])} "
            f"(test {fold['ranges']['test']['window_start']} .. "
            f"{fold['ranges']['test']['last_bar']})"
        )
    return "\n".join(lines)


def _gate_line(gate: dict[str, Any]) -> str:
    """Which block decided the promotion, and the numbers it decided on."""
    line = (
        f"gate on the {gate['block']} block ({gate['n']} windows): accuracy "
        f"{_fmt(gate['model_accuracy'])} vs best baseline {gate['best_baseline']} "
        f"{_fmt(gate['best_baseline_accuracy'])}, edge {gate['edge']:+.4f} "
        f"({gate['confidence']:.0%} lower bound {gate['edge_lower_bound']:+.4f}); log-loss "
        f"{_fmt(gate['model_log_loss'])} vs best baseline {_fmt(gate['best_baseline_log_loss'])}"
    )
    inc = gate.get("incumbent")
    if inc is not None:
        line += (
            f"; incumbent {inc['version']} on {inc['n']} windows: accuracy "
            f"{_fmt(inc['accuracy'])}, log-loss {_fmt(inc['log_loss'])}"
        )
    return line


def _load(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    from sentinel42.persistence import open_store

    with open_store(settings, create=False) as store:  # evaluating creates no store
        bars = store.load_bars(settings.tickers, settings.interval)
        daily = store.load_bars(settings.tickers, "1d")
    if not bars:
        fail(
            f"no stored {settings.interval} bars for {', '.join(settings.tickers)}; "
            "backfill first (e.g. `sentinel42 refresh`)",
            1,
        )
    return bars, daily


def _dead_zone(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = (float(x) for x in value.split(","))
    except ValueError:
        fail(f"--dead-zone takes LOW,HIGH (two numbers, e.g. -0.005,0.0055), not {value!r}", 2)
    if not low < high:
        fail(f"--dead-zone LOW must be below HIGH, got {value!r}", 2)
    return (low, high)


def _ranking_lines(doc: dict[str, Any]) -> list[str]:
    keys = ("rank_ic_mean", "icir", "rank_ic_lower", "long_short_net_annual", "turnover",
            "hit_rate", "accuracy", "mcc")  # fmt: skip
    lines = [f"{'':<14}" + "".join(f"{k[:12]:>13}" for k in keys)]
    for name, m in [("model", doc["model"]), *doc["baselines"].items()]:
        lines.append(f"{name:<14}" + "".join(f"{_fmt(m.get(k)):>13}" for k in keys))
    test = doc["test"]
    lines.append(
        f"test {test['start']} .. {test['end']}: {test['n_periods']} periods, "
        f"{test['n_samples']} samples; best baseline {doc['best_baseline']}; "
        f"train {doc['timing']['train_s']} s, peak RSS {doc['timing']['peak_rss_mb']} MB"
    )
    state = "promoted" if doc["promoted"] else "NOT promoted"
    lines.append(f"{doc['kind']} model {doc['version']} {state}: {doc['reason']}")
    return lines


def train(
    json_output: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    kind: str | None = typer.Option(
        None, "--kind", help="intraday or daily: one ranking LSTM pooled over the universe."
    ),
    horizon: int = typer.Option(
        1, "--horizon", min=1, max=64, help="--kind: rows ahead (bars intraday, sessions daily)."
    ),
    target: str = typer.Option("excess", "--target", help="--kind: excess or raw return."),
    dead_zone: str | None = typer.Option(
        None, "--dead-zone", help="--kind: LOW,HIGH; samples with a target between are dropped."
    ),
    test_start: str | None = typer.Option(None, "--test-start", help="--kind: YYYY-MM-DD."),
    test_end: str | None = typer.Option(None, "--test-end", help="--kind: YYYY-MM-DD."),
) -> None:
    """Train and gate a model. With --kind: the cross-sectional ranking model over the
    universe (SENTINEL42_UNIVERSE), judged by rank IC against the baselines; without: the
    per-ticker direction LSTM on the watchlist."""
    from datetime import UTC, date, datetime

    if kind is None:
        _train_direction(json_output)
        return
    from sentinel42.clock import resolve_as_of
    from sentinel42.model.ranking.panel import KINDS
    from sentinel42.model.ranking.service import public, train_kind
    from sentinel42.model.ranking.train import TrainRequest

    if kind not in KINDS:
        fail(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}", 2)
    if target not in ("excess", "raw"):
        fail(f"--target must be excess or raw, not {target!r}", 2)

    def day(value: str | None, flag: str) -> date | None:
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            fail(f"{flag} takes a date YYYY-MM-DD, not {value!r}", 2)
        return None

    settings = get_settings()
    request = TrainRequest(
        kind=kind, horizon=horizon, target=target, dead_zone=_dead_zone(dead_zone),
        test_start=day(test_start, "--test-start"), test_end=day(test_end, "--test-end"),
        cost_bps=settings.cost_bps, confidence=settings.model_gate_confidence,
        seed=settings.model_seed,
    )  # fmt: skip
    with user_errors():
        now = datetime.now(UTC)
        document = train_kind(
            settings, request, now=now, as_of=resolve_as_of(settings, now),
            progress=lambda line: typer.echo(line, err=True),
        )  # fmt: skip
    if json_output:
        emit_json(public(document))
        return
    for line in _ranking_lines(document):
        typer.echo(line)


def _train_direction(json_output: bool) -> None:
    from datetime import UTC, datetime

    from sentinel42.pipeline import train_model

    settings = get_settings()
    with user_errors():
        report = train_model(
            settings, datetime.now(UTC), progress=lambda line: typer.echo(line, err=True)
        )
    if json_output:
        emit_json(report)
        return
    typer.echo(_table(report))
    typer.echo(_gate_line(report["gate"]))
    state = "promoted" if report["promoted"] else "NOT promoted"
    typer.echo(f"model {report['version']} {state}: {report['reason']}")


def evaluate(
    json_output: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    version: str | None = typer.Option(
        None, "--version", help="Registered version (default: the promoted one, else newest)."
    ),
) -> None:
    """Score a registered model and the baselines on bars after its validation window."""
    from sentinel42.model.config import RegistryConfig
    from sentinel42.model.walk_forward import evaluate_model

    settings = get_settings()
    with user_errors():
        bars, daily = _load(settings)
        registry = RegistryConfig.from_settings(settings)
        document = evaluate_model(registry, bars, version=version, daily=daily or None)
    if json_output:
        emit_json(document)
        return
    window = document["window"]
    typer.echo(
        f"model {document['version']} ({'promoted' if document['promoted'] else 'not promoted'})"
        f", out of sample {window['window_start']} .. {window['last_bar']} ({window['n']} windows)"
    )
    typer.echo(_table(document))


def list_models(
    json_output: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Registered model versions, the promoted one marked with *."""
    from sentinel42.model.storage import open_registry

    settings = get_settings()
    with user_errors():
        registry = open_registry(settings.models_location)
        rows = registry.list()
        current = registry.current_version()
    if json_output:
        emit_json({"current": current, "models": rows})
        return
    if not rows:
        typer.echo(f"no models in {settings.models_dir}")
        return
    for row in rows:
        mark = "*" if row["current"] else " "
        typer.echo(
            f"{mark} {row['version']}  accuracy {_fmt(row['accuracy'])}  "
            f"edge {_fmt(row.get('edge'))}  log_loss {_fmt(row['log_loss'])}  "
            f"ic {_fmt(row['ic'])}  "
            f"{'promoted' if row['promoted'] else 'refused'}: {row['reason']}"
        )


def bench(
    json_output: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    tickers: int = typer.Option(10, min=1, help="Tickers to train on."),
    sessions: int = typer.Option(60, min=10, help="Sessions of 15-minute bars per ticker."),
    infer_tickers: int = typer.Option(500, min=1, help="Tickers in the inference batch."),
) -> None:
    """Training time on synthetic bars and one-batch inference latency (figures, not a test)."""
    from sentinel42.bench.measure import machine, run_isolated

    get_settings(require_replay_dir=False)  # a bad setting: one line here, not in the child
    with user_errors():  # a fresh process (same environment): its peak RSS is its own
        figures = run_isolated(
            "sentinel42.bench.model:bench_model",
            {"train_tickers": tickers, "sessions": sessions, "infer_tickers": infer_tickers},
        )
    figures["machine"] = machine()
    if json_output:
        emit_json(figures)
        return
    t, i = figures["train"], figures["inference"]
    typer.echo(
        f"training: {t['tickers']} tickers x {t['sessions']} sessions ({t['bars']} bars): "
        f"{t['seconds']:.1f} s"
    )
    typer.echo(
        f"inference: {i['tickers']} tickers in one batch: median {i['seconds_median']:.3f} s, "
        f"max {i['seconds_max']:.3f} s, with model load {i['seconds_with_model_load']:.3f} s; "
        f"naive, one call per ticker: {i['seconds_naive_per_ticker']:.3f} s"
    )
    for name, row in figures["stages"].items():
        typer.echo(
            f"{name}: {row['wall_s']:.2f} s wall, {row['cpu_s']:.2f} s CPU, "
            f"peak RSS so far {row['peak_rss_mb']:.0f} MiB"
        )


def validate_news(
    json_output: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Test the stored news sentiment as a ranking signal; the news leg weighs only if it passes."""
    from datetime import UTC, datetime

    from sentinel42.clock import resolve_as_of
    from sentinel42.model.ranking.news_leg import validate_news as _validate

    settings = get_settings()
    with user_errors():
        now = datetime.now(UTC)
        verdict = _validate(settings, now=now, as_of=resolve_as_of(settings, now))
    if json_output:
        emit_json(verdict)
        return
    state = "validated" if verdict["validated"] else "NOT validated"
    typer.echo(f"news leg {state} ({verdict['n_periods']} sessions): {verdict['reason']}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this stage's commands to the root app and the ``bench`` group."""
    model_app = typer.Typer(help="The LSTM predictor: train, evaluate, list.", no_args_is_help=True)
    model_app.command("train")(train)
    model_app.command("evaluate")(evaluate)
    model_app.command("list")(list_models)
    model_app.command("validate-news")(validate_news)
    app.add_typer(model_app, name="model")
    bench_app.command("model")(bench)
    bench_app.command("ranking")(bench_ranking)


def bench_ranking(
    json_output: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    replay_dir: str | None = typer.Option(
        None,
        "--replay-dir",
        help="A replay folder with daily/ and/or prices/ files of the "
        "universe (default: a generated universe of --tickers names).",
    ),
    tickers: int = typer.Option(500, min=20, help="Tickers of the generated universe."),
    kind: list[str] = typer.Option(
        ["daily", "intraday"], "--kind", help="Ranking kind to measure (repeat for both)."
    ),
    runs: int = typer.Option(7, min=1, help="Timed inference runs (the median is reported)."),
) -> None:
    """Ranking models: training time and peak RSS of each kind, each in a fresh process, and
    numpy inference for the universe; figures beside their targets (not a test)."""
    from pathlib import Path

    from sentinel42.bench.ranking import bench_ranking as measure
    from sentinel42.bench.ranking import lines
    from sentinel42.model.ranking.panel import KINDS

    unknown = sorted(set(kind) - set(KINDS))
    if unknown:
        fail(f"--kind must be one of {', '.join(KINDS)}, not {', '.join(unknown)}", 2)
    folder = None if replay_dir is None else Path(replay_dir)
    if folder is not None and not folder.is_dir():
        fail(f"--replay-dir: {replay_dir} is not a folder", 2)
    get_settings(require_replay_dir=False)  # a bad setting: one line here, not in the child
    with user_errors():
        figures = measure(
            folder, tickers=tickers, kinds=tuple(dict.fromkeys(kind)), runs=runs,
            progress=lambda line: typer.echo(line, err=True),
        )  # fmt: skip
    if json_output:
        emit_json(figures)
        return
    for line in lines(figures):
        typer.echo(line)
