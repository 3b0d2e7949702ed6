"""CLI command ``backtest``: replay a period through the live trading path, print the figures."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from sentinel42.cli.common import emit_json, fail, get_settings, user_errors

_FIGURES = (
    ("total_return", "return", "{:+.2%}"),
    ("buy_and_hold_return", "buy&hold", "{:+.2%}"),
    ("sharpe", "sharpe", "{:.2f}"),
    ("max_drawdown", "max dd", "{:.2%}"),
    ("hit_rate", "hit rate", "{:.1%}"),
    ("turnover", "turnover", "{:.2f}"),
    ("n_decisions", "decisions", "{}"),
    ("n_trades", "trades", "{}"),
)


def _cell(value: Any, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"backtest {summary['first_step']} .. {summary['last_step']} "
        f"({summary['steps']} steps, {summary['sessions']} sessions)"
    )
    table.add_column("")
    for _key, label, _fmt in _FIGURES:
        table.add_column(label, justify="right")
    rows = [("all", summary), *summary["per_ticker"].items()]
    for name, figures in rows:
        table.add_row(name, *(_cell(figures.get(key), fmt) for key, _label, fmt in _FIGURES))
    console = Console()
    console.print(table)
    console.print(
        f"models trained {summary['models_trained']} (promoted {summary['models_promoted']}, "
        f"traded {summary['models_traded']}; gate {summary['gate']}); "
        f"decisions with a model {summary['n_with_model']}, with news {summary['n_with_news']}; "
        f"work folder {summary['workdir']}"
    )
    console.print(f"news latency: {summary['news_latency']['rule']}")
    console.print(
        f"cadence {summary['cadence']}; market ({summary['universe_size']} tickers, equal "
        f"weight) {summary['market_return']:+.2%}; excess return over buy&hold "
        f"{summary['excess_return_vs_buy_and_hold']:+.2%}, over the market "
        f"{summary['excess_return_vs_market']:+.2%}"
    )


def _universe(
    replay_dir: Path, watchlist: list[str], option: str | None, setting: str, *, alone: bool
) -> tuple[list[str], list[str]]:
    """What the backtest decides and the market benchmark's universe.

    ``--universe`` alone decides its own tickers (not the watchlist); with ``--tickers`` (or
    from ``SENTINEL42_UNIVERSE``) it is the market's universe around the watchlist, which is
    always part of it, as everywhere. ``watchlist`` as a spec: the watchlist alone.
    """
    from sentinel42.backtest import spec_tickers

    spec = option or setting
    if spec == "watchlist":
        return watchlist, watchlist
    named, problems = spec_tickers(replay_dir, spec)
    for problem in problems[:10]:
        typer.echo(f"universe: {problem}", err=True)
    if len(problems) > 10:
        typer.echo(f"universe: {len(problems) - 10} more problem line(s)", err=True)
    if option is not None and alone:
        return named, named
    return watchlist, [*watchlist, *(t for t in named if t not in set(watchlist))]


def backtest(
    start: str = typer.Option(..., "--start", help="YYYY-MM-DD (that session's open) or ISO 8601."),
    end: str = typer.Option(..., "--end", help="YYYY-MM-DD (that session's close) or ISO 8601."),
    tickers: str | None = typer.Option(
        None, "--tickers", help="Comma-separated; default: the watchlist (or --universe's)."
    ),
    universe: str | None = typer.Option(
        None,
        "--universe",
        help="As SENTINEL42_UNIVERSE: all (the replay folder's tickers), a comma-separated list "
        "or @file. Alone: decide and trade all of it; with --tickers: the market benchmark's "
        "universe. Default: SENTINEL42_UNIVERSE.",
    ),
    cadence: str = typer.Option(
        "bar",
        "--cadence",
        help="bar: a step after every bar (as live); session: one step after each close.",
    ),
    replay_dir: Path | None = typer.Option(
        None, "--replay-dir", help="Recorded data; default: SENTINEL42_REPLAY_DIR."
    ),
    workdir: Path | None = typer.Option(
        None,
        "--workdir",
        help="Empty folder for the backtest's store and models; "
        "default: <data dir>/backtests/<UTC time>.",
    ),
    no_model: bool = typer.Option(False, "--no-model", help="Decide on news sentiment alone."),
    models: str = typer.Option(
        "direction",
        "--models",
        help="What the walk-forward trains, comma-separated: direction (the LSTM), intraday, "
        "daily (the ranking kinds, over the universe).",
    ),
    ungated: bool = typer.Option(
        False,
        "--ungated",
        help="Trade every trained model, promoted or not: evaluates the models (the product "
        "trades only promoted ones). The summary's gate says so.",
    ),
    retrain_sessions: int | None = typer.Option(
        None,
        "--retrain-sessions",
        min=1,
        max=260,
        help="Retrain every N sessions; default: SENTINEL42_BACKTEST_RETRAIN_SESSIONS.",
    ),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG chart here."),
    progress_every: int = typer.Option(
        26, "--progress-every", min=1, help="A progress line on stderr every N steps."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Replay a period bar by bar through the live trading path, with a paper portfolio.

    Every step runs the same refresh and decide as a live trading run, on a store and model
    registry of the backtest's own; nothing after the step's clock is visible.
    """
    from sentinel42.backtest import CADENCES, backtest_settings, parse_bound, run_backtest
    from sentinel42.factory import build_calendar

    if cadence not in CADENCES:
        fail(f"--cadence: {cadence!r} is not one of {', '.join(CADENCES)}")
    overrides = {"tickers": tickers} if tickers else {}
    base = get_settings(require_replay_dir=False, **overrides)
    source = replay_dir or base.replay_dir
    if source is None or not source.is_dir():
        fail("give --replay-dir or SENTINEL42_REPLAY_DIR: a folder in the replay format")
    with user_errors():
        watchlist, market = _universe(
            source, base.tickers, universe, base.universe, alone=tickers is None
        )
    folder = workdir or base.data_dir / "backtests" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if folder.exists() and any(folder.iterdir()):
        fail(f"--workdir {folder} is not empty (a backtest starts from an empty store)")
    package = logging.getLogger("sentinel42")
    quiet = package.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        package.setLevel(logging.WARNING)  # one INFO line per ticker and step otherwise
    try:
        with user_errors():
            settings = backtest_settings(
                source, folder, watchlist, market if market != watchlist else None
            )
            calendar = build_calendar(settings)
            first = parse_bound(start, calendar, end=False)
            last = parse_bound(end, calendar, end=True)
            if first >= last:
                fail(f"--start {start} is not before --end {end}")
            typer.echo(f"backtest work folder: {folder}", err=True)
            result = run_backtest(
                settings,
                first,
                last,
                retrain_sessions=retrain_sessions,
                use_model=not no_model,
                progress=lambda line: typer.echo(line, err=True),
                progress_every=progress_every,
                cadence=cadence,
                universe=market,
                models=[m.strip() for m in models.split(",") if m.strip()],
                ungated=ungated,
            )
    finally:
        package.setLevel(quiet)
    if plot is not None:
        from sentinel42.backtest_plot import plot_backtest

        plot_backtest(result, plot)
        typer.echo(f"chart written to {plot}", err=True)
    if as_json:
        emit_json(result.summary)
        return
    _print_table(result.summary)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add ``backtest`` to the root app."""
    app.command("backtest")(backtest)
