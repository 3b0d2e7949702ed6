"""Is it any good? ``sentinel42 validate`` and ``sentinel42 portfolio``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from sentinel42.cli.common import emit_json, get_settings, user_errors

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console

    from sentinel42.persistence import Store
    from sentinel42.settings import Settings


def _report_on_store(
    compute: Callable[[Store, Settings, datetime], dict[str, Any]],
    show: Callable[[Console, dict[str, Any]], None],
    *,
    as_json: bool,
    create: bool = True,
) -> None:
    """Both commands: read the clock once, compute one document in the store, then print it as
    JSON or for people. Settings and store errors exit with one line (``user_errors``)."""
    from sentinel42 import clock
    from sentinel42.persistence import open_store

    settings = get_settings()
    with user_errors():
        as_of = clock.resolve_as_of(settings)
        with open_store(settings, create=create) as store:
            document = compute(store, settings, as_of)
    if as_json:
        emit_json(document)
        return
    from rich.console import Console

    show(Console(), document)


def _num(value: Any, fmt: str = "{:.4f}") -> str:
    return "-" if value is None else fmt.format(value)


def _pct(value: Any) -> str:
    return _num(value, "{:+.2%}")


def validate(
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Score past decisions against what the price did next; test the model's live skill."""
    from sentinel42.decision_scoring import score_decisions

    def compute(store: Store, settings: Settings, as_of: datetime) -> dict[str, Any]:
        return score_decisions(store, settings, as_of).to_dict()

    # It writes (the decision scores) but has nothing to score without a store: creates none.
    _report_on_store(compute, _print_validation, as_json=as_json, create=False)


def _print_validation(console: Console, report: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(
        f"as of {report['as_of']}: {report['scored']} decisions scored "
        f"({report['newly_scored']} new), {report['pending']} waiting for their horizon"
    )
    table = Table("", "n", "hits", "hit rate", "mean return", title="Decisions and signals")
    rows = [(a, s, "mean_forward_return") for a, s in report["actions"].items()]
    rows += [
        ("model alone", report["model_signal"], "mean_signed_return"),
        ("news alone", report["sentiment_signal"], "mean_signed_return"),
    ]
    for name, s, mean in rows:
        table.add_row(
            name,
            str(s["n"]),
            _num(s["hits"], "{}"),
            _num(s["hit_rate"], "{:.3f}"),
            _num(s[mean], "{:+.4%}"),
        )
    console.print(table)
    p = report["portfolio"]
    if p:
        console.print(
            f"paper portfolio {_pct(p['return'])} vs buy-and-hold {_pct(p['buy_and_hold_return'])} "
            f"(excess {_pct(p['excess_return'])}), {p['start']} .. {p['end']}"
        )
    m = report["model"]
    if m:
        state = "DEGRADED" if m["degraded"] else "healthy"
        console.print(f"model {m['version']}: {state}; {m['note']}")


def portfolio(
    trades: int = typer.Option(10, "--trades", min=0, max=10_000, help="Show the last N trades."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Bring the paper portfolio up to date with the standing decisions and show it.

    The JSON lists every fill under ``trades`` (oldest first), the fills made by this run under
    ``new_trades`` and the orders waiting for their fill bar under ``pending``.
    """
    from sentinel42.persistence import ledger
    from sentinel42.portfolio import update_portfolio

    def compute(store: Store, settings: Settings, as_of: datetime) -> dict[str, Any]:
        snapshot = update_portfolio(store, settings, as_of)
        every = list(reversed(ledger.portfolio_trades(store, limit=None)))
        return snapshot | {
            "new_trades": snapshot["trades"],
            "trades": every,
            "recent_trades": every[::-1][:trades],  # newest first
        }

    # It writes (the portfolio's ledger) but has nothing to do without stored decisions.
    _report_on_store(compute, _print_portfolio, as_json=as_json, create=False)


def _print_portfolio(console: Console, s: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(
        f"as of {s['ts']}: equity {s['equity']:,.2f} ({_pct(s['return'])}), cash {s['cash']:,.2f}; "
        f"realized {s['realized_pnl']:+,.2f}, unrealized {s['unrealized_pnl']:+,.2f}, "
        f"fees {s['fees_paid']:,.2f}, borrow {s['borrow_paid']:,.2f}; "
        f"buy-and-hold {_pct(s['buy_and_hold_return'])}"
    )
    if s["positions"]:
        table = Table("ticker", "quantity", "avg price", "last", "value", "unrealized")
        for ticker, p in s["positions"].items():
            table.add_row(
                ticker,
                f"{p['quantity']:,.4f}",
                f"{p['avg_price']:,.4f}",
                f"{p['last_price']:,.4f}",
                f"{p['market_value']:,.2f}",
                f"{p['unrealized_pnl']:+,.2f}",
            )
        console.print(table)
    else:
        console.print("no open positions")
    if s["pending"]:
        table = Table(
            "decided (UTC)", "ticker", "action", "target weight", "why", title="Pending orders"
        )
        for o in s["pending"]:
            table.add_row(
                _utc(o["decided_at"]),
                o["ticker"],
                o["action"],
                f"{o['target_weight']:+.2%}",
                o["reason"],
            )
        console.print(table)
    else:
        console.print("no pending orders")
    if s["recent_trades"]:
        table = Table(
            "decided (UTC)",
            "fill bar (UTC)",
            "ticker",
            "side",
            "quantity",
            "fill",
            "fee",
            "why",
            title="Trades",
        )
        for t in s["recent_trades"]:
            # A trade saved before fills moved to the next bar has only its bar (``ts``).
            table.add_row(
                _utc(t.get("decided_at")),
                _utc(t.get("fill_bar", t.get("ts"))),
                t["ticker"],
                t["side"],
                f"{t['quantity']:,.4f}",
                f"{t.get('fill_price', t.get('price')):,.4f}",
                f"{t['fee']:,.2f}",
                t["reason"],
            )
        console.print(table)


def _utc(iso: str | None) -> str:
    return "-" if iso is None else iso[:16].replace("T", " ")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add ``validate`` and ``portfolio`` to the root app."""
    app.command("validate")(validate)
    app.command("portfolio")(portfolio)
