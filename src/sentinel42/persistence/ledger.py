"""The portfolio ledger: the paper portfolio's state, its trades and its equity curve, and the
standing decisions it trades on.

Every write is idempotent on its natural key, so a retried or repeated run changes nothing: the
portfolio state upserts on its key (the newest event it includes) and an equity point on its bar.
Decision scores and model health live in :mod:`sentinel42.persistence.score_ledger`.

All datetimes are tz-aware UTC; bar timestamps are bar starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from sentinel42.domain import Decision, EquityPoint, SavedPortfolio
from sentinel42.persistence.tables import EquityPointRow, PortfolioStateRow

if TYPE_CHECKING:
    from sentinel42.persistence.store import Store

_FIRST_PAGE = 512


# --- decisions --------------------------------------------------------------------------------
def standing_decisions(
    store: Store, *, after: datetime | None = None, until: datetime | None = None
) -> list[Decision]:
    """Standing decisions (revision 0) with ``after < bar_ts <= until``, oldest bar first.

    Reads the store's newest-first listing a page at a time, doubling the page until it reaches
    ``after``: in steady state only the few newest rows are read.
    """
    limit = _FIRST_PAGE
    while True:
        rows = store.decisions(limit=limit)
        if len(rows) < limit or (after is not None and rows[-1].bar_ts <= after):
            break
        limit *= 2
    picked = [
        d
        for d in rows
        if getattr(d, "revision", 0) == 0
        and (after is None or d.bar_ts > after)
        and (until is None or d.bar_ts <= until)
    ]
    return sorted(picked, key=lambda d: (d.bar_ts, d.ticker))


# --- portfolio ----------------------------------------------------------------------------------
def save_portfolio_state(store: Store, saved: SavedPortfolio) -> None:
    """Upsert the portfolio state under its key."""
    save_portfolio_step(store, saved, None)


def save_portfolio_step(store: Store, saved: SavedPortfolio, point: EquityPoint | None) -> None:
    """Upsert a state row and, with it in one transaction, its equity point (a crash leaves
    neither or both)."""
    stmt = store._insert(PortfolioStateRow).values(
        bar_ts=saved.bar_ts,
        state=saved.state,
        trades=saved.trades,
        equity=saved.equity,
        cash=saved.cash,
        saved_at=saved.saved_at,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["bar_ts"],
        set_={c: stmt.excluded[c] for c in ("state", "trades", "equity", "cash", "saved_at")},
    )
    with store.session() as s:
        s.execute(stmt)
        if point is not None:
            s.execute(_equity_upsert(store), [_equity_record(point)])


def latest_portfolio_state(store: Store) -> SavedPortfolio | None:
    """The state after the newest applied bar, or None before the first decision is applied."""
    with store.session() as s:
        row = s.scalars(
            select(PortfolioStateRow).order_by(PortfolioStateRow.bar_ts.desc()).limit(1)
        ).first()
        if row is None:
            return None
        return SavedPortfolio(
            bar_ts=row.bar_ts,
            state=row.state,
            trades=row.trades,
            equity=row.equity,
            cash=row.cash,
            saved_at=row.saved_at,
        )


def portfolio_trades(store: Store, limit: int | None = 50) -> list[dict[str, Any]]:
    """The newest trades of the paper portfolio, newest first (each a ``Trade`` as a dict);
    ``limit`` None: every one."""
    out: list[dict[str, Any]] = []
    query = select(PortfolioStateRow.trades).order_by(PortfolioStateRow.bar_ts.desc())
    with store.engine.connect() as conn:
        for (trades,) in conn.execute(query):
            out.extend(reversed(trades))
            if limit is not None and len(out) >= limit:
                break
    return out if limit is None else out[:limit]


def save_equity_points(store: Store, points: Sequence[EquityPoint]) -> None:
    """Upsert equity points on their ``ts``."""
    if not points:
        return
    with store.session() as s:
        s.execute(_equity_upsert(store), [_equity_record(p) for p in points])


def _equity_record(p: EquityPoint) -> dict[str, Any]:
    return {
        "ts": p.ts,
        "equity": p.equity,
        "cash": p.cash,
        "buy_and_hold_equity": p.buy_and_hold_equity,
    }


def _equity_upsert(store: Store) -> Any:
    stmt = store._insert(EquityPointRow)
    return stmt.on_conflict_do_update(
        index_elements=["ts"],
        set_={c: stmt.excluded[c] for c in ("equity", "cash", "buy_and_hold_equity")},
    )


def equity_curve(store: Store) -> list[EquityPoint]:
    """Every equity point, oldest first."""
    query = select(
        EquityPointRow.ts,
        EquityPointRow.equity,
        EquityPointRow.cash,
        EquityPointRow.buy_and_hold_equity,
    ).order_by(EquityPointRow.ts)
    with store.engine.connect() as conn:
        return [EquityPoint(*row) for row in conn.execute(query)]
