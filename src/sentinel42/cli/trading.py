"""Pipeline commands: decisions, status, refresh, trade, replay generate."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sentinel42.cli.common import emit_json, fail, get_settings, user_errors

if TYPE_CHECKING:
    from sentinel42.domain import RefreshSummary

replay_app = typer.Typer(help="Replay folders for the offline mode.", no_args_is_help=True)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def decisions(
    ticker: str | None = typer.Option(None, "--ticker", "-t", help="Only this ticker."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=10_000, help="At most N rows."),
    all_revisions: bool = typer.Option(
        False,
        "--all-revisions",
        help="Every revision of each bar's decision (later runs, e.g. forced), not only the "
        "standing one.",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON list on stdout."),
) -> None:
    """Recorded decisions, newest bar first: the standing one per ticker and bar."""
    from sentinel42.persistence import open_store, score_ledger
    from sentinel42.pipeline import decision_row

    settings = get_settings(require_replay_dir=False)
    with user_errors(), open_store(settings, readonly=True) as store:
        found = store.decisions(
            ticker.upper() if ticker else None, limit, all_revisions=all_revisions
        )
        scores = {(sc.ticker, sc.bar_ts): sc for sc in score_ledger.decision_scores(store)}
    rows = []
    for d in found:
        row = decision_row(d, stored=True)
        score = scores.get((d.ticker, d.bar_ts)) if d.revision == 0 else None
        row["outcome"] = (
            None
            if score is None
            else {"forward_return": score.forward_return, "hit": score.hit,
                  "horizon_bars": score.horizon_bars}
        )  # fmt: skip
        rows.append(row)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        typer.echo("no decisions yet (run the trading flow, or `sentinel42 trade --force`)")
        return
    _print_decisions(rows, all_revisions=all_revisions)


def _outcome(row: dict[str, Any]) -> str:
    outcome = row.get("outcome")
    if outcome is None:
        return "pending" if row["revision"] == 0 else ""
    verdict = {True: "right", False: "wrong", None: "HOLD"}[outcome["hit"]]
    return f"{verdict} ({outcome['forward_return']:+.2%})"


def _print_decisions(rows: list[dict[str, Any]], *, all_revisions: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Decisions (simulated; not investment advice)", title_justify="left")
    for name in ("bar (UTC)", "ticker", *(["rev"] if all_revisions else []), "action", "conf.",
                 "fused", "model", "news", "outcome", "reason"):  # fmt: skip
        table.add_column(name, overflow="fold")
    style = {"BUY": "green", "SELL": "red", "HOLD": "yellow"}
    for r in rows:
        inputs, weights = r["inputs"], r["inputs"].get("weights", {})
        model = (
            f"{weights.get('model', 0):.2f}x{inputs['model_signal']:+.2f}"
            if "model_signal" in inputs and "p_up" in inputs
            else "-"
        )
        news = (
            f"{weights.get('sentiment', 0):.2f}x{inputs['sentiment']:+.2f} ({inputs['headlines']})"
            if inputs.get("sentiment") is not None
            else "-"
        )
        fused = inputs.get("fused")
        table.add_row(
            r["bar_ts"][:16].replace("T", " "),
            r["ticker"],
            *([str(r["revision"])] if all_revisions else []),
            f"[{style[r['action']]}]{r['action']}[/]",
            f"{r['confidence']:.2f}",
            f"{fused:+.3f}" if isinstance(fused, (int, float)) else "-",
            model,
            news,
            _outcome(r),
            r["reason"].split(";")[0],
        )
    Console(width=max(140, Console().width)).print(table)


def status(
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Per ticker: newest bar, newest headline, newest decision, and the model in use."""
    from sentinel42.clock import resolve_as_of
    from sentinel42.persistence import ledger, open_store, score_ledger
    from sentinel42.pipeline import current_model_version, decision_row, leg_status

    settings = get_settings(require_replay_dir=False)
    with user_errors():
        legs = leg_status(settings, resolve_as_of(settings))
    with user_errors(), open_store(settings, readonly=True) as store:
        bars = store.newest_bar_ts(settings.tickers, settings.interval)
        news = store.newest_headline_ts(settings.tickers)
        model = current_model_version(settings)
        latest = {t: store.decisions(t, 1) for t in settings.tickers}
        saved = ledger.latest_portfolio_state(store)
        hits, n = (
            score_ledger.recent_model_hits(store, model, settings.validate_window)
            if model
            else (0, 0)
        )
        health = score_ledger.model_health(store, model) if model else None
    portfolio = (
        {"equity": saved.equity, "cash": saved.cash, "as_of_bar": saved.bar_ts.isoformat(),
         "return": saved.equity / settings.portfolio_starting_cash - 1.0}
        if saved is not None
        else None
    )  # fmt: skip
    live = {
        "version": model,
        "live_hits": hits,
        "live_n": n,
        "live_hit_rate": hits / n if n else None,
        "degraded": bool(health and health.degraded),
    }
    tickers: list[dict[str, Any]] = []
    for t in settings.tickers:
        newest = latest[t][0] if latest[t] else None
        tickers.append(
            {
                "ticker": t,
                "newest_bar_ts": _iso(bars[t]),
                "newest_headline_ts": _iso(news[t]),
                "newest_decision": decision_row(newest, stored=True) if newest else None,
                "model_version": model,
            }
        )
    if as_json:
        emit_json({"tickers": tickers, "data_source": settings.data_source,
                   "portfolio": portfolio, "model": live, "legs": legs})  # fmt: skip
        return
    typer.echo(f"data source: {settings.data_source}   model: {model or 'none promoted'}")
    for name, leg in legs.items():
        state = "live" if leg["live"] else "off"
        version = f" {leg['version']}" if leg.get("version") else ""
        typer.echo(f"leg {name:<9} {state}{version}: {leg['why']}")
    rate = f"{live['live_hit_rate']:.3f} over {n}" if n else "no scored signals yet"
    typer.echo(f"model live hit rate: {rate}{'  (DEGRADED: weight 0)' if live['degraded'] else ''}")
    if portfolio is not None:
        typer.echo(
            f"paper portfolio: {portfolio['equity']:,.2f} USD ({portfolio['return']:+.2%}), "
            f"cash {portfolio['cash']:,.2f}"
        )
    else:
        typer.echo("paper portfolio: no decision applied yet")
    for row in tickers:
        d = row["newest_decision"]
        typer.echo(
            f"{row['ticker']:<6} bar {row['newest_bar_ts'] or '-':<26} "
            f"news {row['newest_headline_ts'] or '-':<26} "
            f"decision {d['action'] + ' @ ' + d['bar_ts'] if d else '-'}"
        )


def refresh(
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Run one data refresh (prices, news, sentiment) in-process; no server needed.

    Exits 1 when every ticker failed (the report is printed first); a partial failure exits 0
    and names each failed ticker.
    """
    from sentinel42 import clock, pipeline

    settings = get_settings()
    with user_errors():
        as_of = clock.resolve_as_of(settings)
        summary = pipeline.refresh_all(
            settings, as_of, progress=lambda line: typer.echo(line, err=True)
        )
    failed = [row for row in summary.tickers if row.get("error")]
    if as_json:
        emit_json(summary.to_dict())
    else:
        _print_refresh(summary)
    if failed and len(failed) == len(summary.tickers):
        first = failed[0]
        fail(f"every ticker failed ({len(failed)}), e.g. {first['ticker']}: {first['error']}", 1)


def _print_refresh(summary: RefreshSummary) -> None:
    typer.echo(f"refresh as of {summary.as_of.isoformat()}")
    for row in summary.tickers:
        extra = f"  error: {row['error']}" if row.get("error") else ""
        typer.echo(
            f"{row['ticker']:<6} bars +{row['bars_new']} ~{row['bars_updated']} "
            f"rejected {row['bars_rejected']} flagged {row['bars_flagged']}  "
            f"daily +{row.get('daily_bars_new', 0)}  headlines +{row['headlines_new']}{extra}"
        )
    typer.echo(f"headlines scored: {summary.headlines_scored} by {summary.scorer}")
    skipped_rows = [line for row in summary.tickers for line in row.get("problems", [])]
    # The news problems (summary.problems) are not repeated: the news refresh logged each
    # once on stderr (issue 18: a bad news line was printed three times).
    for problem in skipped_rows:
        typer.echo(f"note: {problem}", err=True)


def trade(
    force: bool = typer.Option(False, "--force", help="Decide even outside an NYSE session."),
    skip_refresh: bool = typer.Option(False, "--skip-refresh", help="Decide on stored data."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Run the trading path in-process (no server): refresh, gate, predict, fuse, decide.

    Exits 1 without deciding when the refresh got no usable bars for any watchlist ticker; a
    partial failure decides on the rest and names each failed ticker on stderr.
    """
    from sentinel42 import clock, pipeline
    from sentinel42.ops.doctor import store_integrity_error

    settings = get_settings()
    with user_errors():
        damaged = store_integrity_error(settings)  # quick_check first, as the trading flow does
        if damaged is not None:
            raise damaged
        as_of = clock.resolve_as_of(settings)
        gate = pipeline.market_gate(settings, as_of, force=force)
        if not gate.proceed:
            document: dict[str, Any] = {
                "as_of": as_of.isoformat(),
                "skipped": gate.reason,
                "decisions": [],
            }
        else:
            failed: list[str] = []
            if not skip_refresh:
                summary = pipeline.refresh_all(
                    settings, as_of, progress=lambda s: typer.echo(s, err=True)
                )
                if summary.no_usable_data:
                    fail(f"no decision: {summary.no_usable_data}", 1)
                failed = list(summary.failed_tickers)
                for row in summary.tickers:
                    if row.get("error"):
                        typer.echo(
                            f"note: {row['ticker']} refresh failed: {row['error']}", err=True
                        )
            document = pipeline.decide(settings, as_of, forced=force).to_dict()
            document["failed_tickers"] = failed
            document["portfolio"] = pipeline.update_portfolio(settings, as_of).to_dict()
    if as_json:
        emit_json(document)
        return
    if "skipped" in document:
        typer.echo(document["skipped"])
    for d in document["decisions"]:
        typer.echo(f"{d['ticker']:<6} {d['action']:<4} {d['confidence']:.2f}  {d['reason']}")


@replay_app.command("generate")
def replay_generate(
    out: Path = typer.Option(..., "--out", help="Folder to write (created if missing)."),
    tickers: str | None = typer.Option(
        None, "--tickers", help="Comma-separated; default: the watchlist."
    ),
    sessions: int = typer.Option(30, "--sessions", min=2, max=2000, help="NYSE sessions of bars."),
    end: str | None = typer.Option(
        None, "--end", help="Last day (YYYY-MM-DD); default: yesterday."
    ),
    seed: int = typer.Option(42, "--seed", help="Random seed (same seed, same files)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Write a seeded synthetic replay set (prices and headlines that carry some signal)."""
    from datetime import UTC, datetime, timedelta

    from sentinel42.synthetic import generate_replay

    overrides = {"tickers": tickers} if tickers else {}
    settings = get_settings(require_replay_dir=False, **overrides)
    try:
        last = date.fromisoformat(end) if end else (datetime.now(UTC) - timedelta(days=1)).date()
    except ValueError:
        fail(f"--end: {end!r} is not a date (YYYY-MM-DD)")
    result = generate_replay(
        out,
        settings.tickers,
        end=last,
        sessions=sessions,
        interval_minutes=settings.interval_minutes,
        seed=seed,
    )
    document = {
        "path": str(out),
        "tickers": list(result.tickers),
        "bars": result.bars,
        "headlines": result.headlines,
        "start": result.start.isoformat(),
        "end": result.end.isoformat(),
    }
    if as_json:
        emit_json(document)
    else:
        typer.echo(
            f"wrote {result.bars} bars and {result.headlines} headlines for "
            f"{', '.join(result.tickers)} to {out} ({document['start']} .. {document['end']})\n"
            f"use it: SENTINEL42_DATA_SOURCE=replay SENTINEL42_REPLAY_DIR={out}"
        )


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the core commands to the root app."""
    app.command("decisions")(decisions)
    app.command("status")(status)
    app.command("refresh")(refresh)
    app.command("trade")(trade)
    app.add_typer(replay_app, name="replay")
