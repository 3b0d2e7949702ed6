"""CLI commands of the market-data stage: ``calendar``, ``record`` and ``bench refresh``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from sentinel42.cli.common import emit_json, fail, get_settings, user_errors

JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


def _parse_at(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError:
        fail(f"--at {at!r} is not an ISO 8601 time (e.g. 2026-11-27T14:00:00-05:00)")
    if parsed.tzinfo is None:
        fail(f"--at {at!r} needs a UTC offset (e.g. 2026-11-27T14:00:00-05:00)")
    return parsed.astimezone(UTC)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this stage's commands to the root app and the ``bench`` group."""

    @app.command("calendar")
    def calendar_cmd(
        at: Annotated[
            str | None, typer.Option("--at", help="ISO 8601 time with offset; default: now.")
        ] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Is the NYSE open at a time? The session, the next open and why."""
        from sentinel42.market.calendar import NEW_YORK, NyseCalendar

        settings = get_settings(require_replay_dir=False)
        when = _parse_at(at)
        with user_errors():
            status = NyseCalendar.from_settings(settings).status(when)
        if as_json:
            emit_json(status.to_dict())
            return
        local = when.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M %Z")
        typer.echo(f"{local}: {'OPEN' if status.open else 'CLOSED'} ({status.reason})")
        if status.session_open and status.session_close:
            o = status.session_open.astimezone(NEW_YORK).strftime("%H:%M")
            c = status.session_close.astimezone(NEW_YORK).strftime("%H:%M %Z")
            typer.echo(f"session: {o}-{c}")
        typer.echo(f"next open: {status.next_open.astimezone(NEW_YORK):%Y-%m-%d %H:%M %Z}")

    @app.command("record")
    def record_cmd(
        out: Annotated[Path, typer.Option("--out", help="Folder to write in the replay format.")],
        universe: Annotated[
            bool,
            typer.Option(
                "--universe",
                help="Record the universe's tickers (SENTINEL42_UNIVERSE), daily bars "
                "SENTINEL42_DAILY_HISTORY_YEARS back, instead of the watchlist's.",
            ),
        ] = False,
        as_json: JsonFlag = False,
    ) -> None:
        """Capture live prices (and news, where available) into a replay folder."""
        from sentinel42.clock import resolve_as_of
        from sentinel42.factory import build_news_sources, build_price_source
        from sentinel42.market.record import record_news, record_prices
        from sentinel42.market.universe import daily_history_start, resolve_universe

        settings = get_settings(require_replay_dir=False)
        if settings.data_source == "replay" and settings.replay_dir is None:
            fail("SENTINEL42_REPLAY_DIR: required when SENTINEL42_DATA_SOURCE=replay")
        as_of = resolve_as_of(settings)

        def progress(message: str) -> None:
            typer.echo(message, err=True)

        with user_errors():
            source = build_price_source(settings)
            tickers = list(settings.tickers)
            daily_since = None
            if universe:
                resolved = resolve_universe(settings, source)
                for problem in resolved.problems:
                    typer.echo(f"note: {problem}", err=True)
                tickers = list(resolved.tickers)
                daily_since = daily_history_start(as_of, settings.daily_history_years)
            rows = record_prices(
                source,
                tickers,
                settings.interval,
                out,
                as_of,
                daily_history_days=settings.daily_history_days,
                daily_since=daily_since,
                progress=progress,
            )
            headlines = record_news(build_news_sources(settings), settings.tickers, out, as_of)
        if as_json:
            emit_json({"out": out, "as_of": as_of, "tickers": rows, "headlines": headlines})
            return
        for row in rows:
            status = f"error: {row.error}" if row.error else f"{row.bars_total} bars"
            typer.echo(f"{row.ticker}: {status}, {row.daily_total} daily bars")
        if all(row.error for row in rows):
            raise typer.Exit(1)

    @bench_app.command("refresh")
    def bench_refresh_cmd(
        tickers: Annotated[int, typer.Option("--tickers", min=1, max=5000)] = 500,
        days: Annotated[int, typer.Option("--days", min=1, max=60, help="Backfill days.")] = 60,
        as_json: JsonFlag = False,
    ) -> None:
        """Validate + store one refresh of synthetic bars (no network): backfill, then +1 bar."""
        from sentinel42.bench.measure import machine, run_isolated

        with user_errors():  # a fresh process: its peak RSS is this benchmark's own
            result = run_isolated(
                "sentinel42.bench.refresh:bench_refresh", {"n_tickers": tickers, "days": days}
            )
        result["machine"] = machine()
        if as_json:
            emit_json(result)
            return
        for name, figures in result["phases"].items():
            typer.echo(
                f"{name}: {figures['cpu_s']:.2f} s CPU, {figures['wall_s']:.2f} s wall, "
                f"{figures['bars']} bars (validate {figures['validate_cpu_s']:.2f} s CPU, "
                f"store {figures['store_cpu_s']:.2f} s CPU), peak RSS so far "
                f"{figures['peak_rss_mb']:.0f} MiB"
            )
        typer.echo(f"process peak RSS {result['process']['peak_rss_mb']:.0f} MiB")
