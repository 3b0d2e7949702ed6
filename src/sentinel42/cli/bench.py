"""CLI commands ``bench cycle``, ``bench trigger`` and ``bench backtest`` (the stage benchmarks
sit with their stages).

Heavy imports stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sentinel42.cli.common import emit_json, fail, get_settings, user_errors

JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


def _stage_lines(stages: dict[str, Any]) -> None:
    for name, row in stages.items():
        typer.echo(
            f"  {name:22} {row['wall_s']:7.2f} s wall {row['cpu_s']:7.2f} s CPU "
            f"{row['peak_rss_mb']:7.0f} MiB peak so far"
        )


def cycle(
    tickers: Annotated[
        int, typer.Option("--tickers", min=1, max=5000, help="Watchlist size.")
    ] = 50,
    naive: Annotated[
        bool, typer.Option("--naive/--no-naive", help="Also do the same work the naive way.")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """One full trading cycle in a fresh process, beside the naive way (figures, not a test).

    Refresh (+1 bar, +1 headline per ticker), FinBERT-sized sentiment, LSTM, fusion, decisions
    and portfolio on a generated replay set; the naive way does the same work one call per
    ticker (see sentinel42/bench/cycle.py).
    """
    settings = get_settings(require_replay_dir=False)
    with user_errors():
        from sentinel42.bench.cycle import bench_cycle
        from sentinel42.bench.cycle_setup import scoring_setup

        doc = bench_cycle(
            tickers,
            naive=naive,
            scoring=scoring_setup(settings),
            progress=lambda line: typer.echo(line, err=True),
        )
    if as_json:
        emit_json(doc)
        return
    typer.echo(f"sentiment model: {doc['sentiment_model']}, {doc['settings']['sentiment_runtime']}")
    typer.echo(
        f"cycle, {tickers} tickers: {doc['total_s']:.2f} s ({doc['warm_total_s']:.2f} s without "
        f"imports and model load), peak RSS {doc['peak_rss_mb']:.0f} MiB"
    )
    _stage_lines(doc["stages"])
    if doc["naive_stages"] is not None:
        typer.echo(
            f"naive, {tickers} tickers: {doc['naive_total_s']:.2f} s "
            f"({doc['naive_warm_total_s']:.2f} s without imports and model load), "
            f"peak RSS {doc['naive_peak_rss_mb']:.0f} MiB"
        )
        _stage_lines(doc["naive_stages"])
    load = doc["machine"]["before"]["load_avg_1_5_15"]
    typer.echo(f"machine: {doc['machine']['before']['cores']} cores, load {load} before")


def trigger(
    deployment: Annotated[
        str, typer.Option("--deployment", help="FLOW/DEPLOYMENT to run (with force=true).")
    ] = "trading-flow/trading-production",
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait.")] = 600,
    as_json: JsonFlag = False,
) -> None:
    """Trigger a forced trading run on the running server and time its states.

    Needs PREFECT_API_URL and a running server and worker (make prefect-start); starts nothing
    itself. The state timestamps come from the Prefect API.
    """
    with user_errors():
        from sentinel42.bench.trigger import bench_trigger

        doc = bench_trigger(deployment, {"force": True}, timeout_s=timeout)
    if as_json:
        emit_json(doc)
        return
    typer.echo(f"{doc['run_name']} ({doc['flow_run_id']}): {doc['final_state']}")
    for key in (
        "scheduled_to_pending_s",
        "pending_to_running_s",
        "scheduled_to_running_s",
        "running_to_completed_s",
        "total_s",
        "observed_s",
    ):
        typer.echo(f"  {key:24} {doc[key]}")
    for task in doc["tasks"]:
        typer.echo(f"  task {task['name']:40} {task['state']:10} {task['seconds']} s")


def backtest(
    replay_dir: Annotated[
        Path, typer.Option("--replay-dir", help="A replay folder (e.g. the S&P 500 15m file).")
    ],
    tickers: Annotated[
        int, typer.Option("--tickers", min=1, max=5000, help="The first N tickers by name.")
    ],
    start: Annotated[str, typer.Option("--start", help="YYYY-MM-DD or ISO 8601, as backtest.")],
    end: Annotated[str, typer.Option("--end", help="YYYY-MM-DD or ISO 8601, as backtest.")],
    cadence: Annotated[
        str, typer.Option("--cadence", help="bar (every bar) or session (after each close).")
    ] = "bar",
    model: Annotated[
        bool, typer.Option("--model/--no-model", help="Train walk-forward, as backtest does.")
    ] = False,
    models: Annotated[
        str,
        typer.Option("--models", help="With --model: direction, intraday, daily (as backtest)."),
    ] = "direction",
    ungated: Annotated[
        bool, typer.Option("--ungated", help="Trade every trained model (as backtest).")
    ] = False,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Keep the store and models here (empty or new folder)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Time one backtest over a universe in a fresh process (figures, not a test).

    Prints seconds in all, per step and per ticker-step, the peak RSS and the machine's load
    before and after (see sentinel42/bench/backtest.py).
    """
    if not replay_dir.is_dir():
        fail(f"--replay-dir {replay_dir}: no such folder")
    with user_errors():
        from sentinel42.bench.backtest import bench_backtest, lines

        doc = bench_backtest(
            replay_dir,
            tickers,
            start,
            end,
            cadence=cadence,
            use_model=model,
            models=[m.strip() for m in models.split(",") if m.strip()],
            ungated=ungated,
            keep=workdir,
        )
    if as_json:
        emit_json(doc)
        return
    for line in lines(doc):
        typer.echo(line)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add ``bench cycle``, ``bench trigger`` and ``bench backtest`` to the ``bench`` group."""
    bench_app.command("cycle")(cycle)
    bench_app.command("trigger")(trigger)
    bench_app.command("backtest")(backtest)
