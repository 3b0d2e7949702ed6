"""The ledger: paper-portfolio state, equity curve, decision scores and model health.

Every write is idempotent on its natural key, so a retried or repeated run changes nothing: the
portfolio state upserts on its key (the newest event it includes), an equity point on its bar, a
decision score is written once per ``(ticker, bar_ts)`` and never rewritten, and a model's
health upserts on its version (once degraded, it stays degraded).

All datetimes are tz-aware UTC; bar timestamps are bar starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import case, func, select

from sentinel42.domain import Action, Decision
from sentinel42.persistence.tables import (
    DecisionScoreRow,
    EquityPointRow,
    ModelHealthRow,
    PortfolioStateRow,
)

if TYPE_CHECKING:
    from sentinel42.persistence.store import Store

_FIRST_PAGE = 512


@dataclass(frozen=True, slots=True)
class SavedPortfolio:
    """The paper portfolio after every event up to ``bar_ts``: a fill bar's start, a decision
    clock or a mark (the newest of them; keys only grow, so the newest row is the state)."""

    bar_ts: datetime
    state: dict[str, Any]  # {"portfolio": Portfolio.to_state(), "buy_and_hold": {...}}
    trades: list[dict[str, Any]]  # the fills saved under this key (Trade.to_dict())
    equity: float
    cash: float
    saved_at: datetime


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """Equity (USD) valued at the close of the bar starting at ``ts``."""

    ts: datetime
    equity: float
    cash: float
    buy_and_hold_equity: float


@dataclass(frozen=True, slots=True)
class DecisionScore:
    """A standing decision against what the price did ``horizon_bars`` bars later.

    ``forward_return = exit_close / close - 1``. ``hit`` is None for HOLD; a signal is +1 (up),
    -1 (down) or None (no signal), and its hit is None when there was no signal.
    """

    ticker: str
    bar_ts: datetime
    action: Action
    close: float
    exit_bar_ts: datetime
    exit_close: float
    horizon_bars: int
    forward_return: float
    hit: bool | None
    model_signal: int | None
    model_signal_hit: bool | None
    sentiment_signal: int | None
    sentiment_signal_hit: bool | None
    model_version: str | None
    scored_at: datetime


@dataclass(frozen=True, slots=True)
class ModelHealth:
    """A model version's live hit rate tested against its validated accuracy."""

    model_version: str
    degraded: bool
    live_hits: int
    live_n: int
    validated_accuracy: float | None
    threshold: float | None  # validated accuracy minus the margin: H0 says the hit rate >= it
    p_value: float | None
    at: datetime


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Count, hits and mean return of one group of scored decisions (``hits`` None: no hits)."""

    n: int
    hits: int | None
    mean_return: float | None

    @property
    def hit_rate(self) -> float | None:
        return None if self.hits is None or self.n == 0 else self.hits / self.n


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


# --- decision scores ----------------------------------------------------------------------------
def save_decision_scores(store: Store, scores: Sequence[DecisionScore]) -> int:
    """Insert the scores not yet stored (a stored one is never rewritten); returns how many."""
    if not scores:
        return 0
    records = [
        {
            "ticker": sc.ticker,
            "bar_ts": sc.bar_ts,
            "action": sc.action.value,
            "close": sc.close,
            "exit_bar_ts": sc.exit_bar_ts,
            "exit_close": sc.exit_close,
            "horizon_bars": sc.horizon_bars,
            "forward_return": sc.forward_return,
            "hit": sc.hit,
            "model_signal": sc.model_signal,
            "model_signal_hit": sc.model_signal_hit,
            "sentiment_signal": sc.sentiment_signal,
            "sentiment_signal_hit": sc.sentiment_signal_hit,
            "model_version": sc.model_version,
            "scored_at": sc.scored_at,
        }
        for sc in scores
    ]
    stmt = store._insert(DecisionScoreRow).on_conflict_do_nothing().returning(DecisionScoreRow.id)
    with store.engine.begin() as conn:
        return len(conn.execute(stmt, records).all())


def decision_scores(store: Store, ticker: str | None = None) -> list[DecisionScore]:
    """Stored scores, oldest bar first."""
    t = DecisionScoreRow
    query = select(t).order_by(t.bar_ts, t.ticker)
    if ticker is not None:
        query = query.where(t.ticker == ticker)
    with store.session() as s:
        return [
            DecisionScore(
                ticker=r.ticker,
                bar_ts=r.bar_ts,
                action=Action(r.action),
                close=r.close,
                exit_bar_ts=r.exit_bar_ts,
                exit_close=r.exit_close,
                horizon_bars=r.horizon_bars,
                forward_return=r.forward_return,
                hit=r.hit,
                model_signal=r.model_signal,
                model_signal_hit=r.model_signal_hit,
                sentiment_signal=r.sentiment_signal,
                sentiment_signal_hit=r.sentiment_signal_hit,
                model_version=r.model_version,
                scored_at=r.scored_at,
            )
            for r in s.scalars(query)
        ]


def scored_keys(store: Store, *, after: datetime | None = None) -> set[tuple[str, datetime]]:
    """``(ticker, bar_ts)`` of the scored decisions with ``bar_ts > after``."""
    query = select(DecisionScoreRow.ticker, DecisionScoreRow.bar_ts)
    if after is not None:
        query = query.where(DecisionScoreRow.bar_ts > after)
    with store.engine.connect() as conn:
        return {(t, ts) for t, ts in conn.execute(query)}


def newest_scored_bar_ts(store: Store) -> datetime | None:
    query = select(DecisionScoreRow.bar_ts).order_by(DecisionScoreRow.bar_ts.desc()).limit(1)
    with store.engine.connect() as conn:
        return conn.execute(query).scalar_one_or_none()


def count_scores(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count(DecisionScoreRow.id))).scalar_one())


def action_stats(store: Store) -> dict[Action, GroupStats]:
    """Per action over every stored score: count, hits (None for HOLD), mean forward return."""
    t = DecisionScoreRow
    query = select(
        t.action,
        func.count(t.id),
        func.sum(case((t.hit.is_(True), 1), else_=0)),
        func.avg(t.forward_return),
    ).group_by(t.action)
    with store.engine.connect() as conn:
        rows = {a: (n, hits, mean) for a, n, hits, mean in conn.execute(query)}
    out: dict[Action, GroupStats] = {}
    for action in Action:
        n, hits, mean = rows.get(action.value, (0, 0, None))
        out[action] = GroupStats(
            n=int(n),
            hits=None if action is Action.HOLD else int(hits or 0),
            mean_return=None if mean is None else float(mean),
        )
    return out


def signal_stats(store: Store, signal: Literal["model", "sentiment"]) -> GroupStats:
    """One signal alone over every stored score where it spoke.

    ``mean_return`` is the mean *signed* forward return: what following the signal earned
    (the forward return when it said up, minus it when it said down).
    """
    t = DecisionScoreRow
    direction = t.model_signal if signal == "model" else t.sentiment_signal
    hit = t.model_signal_hit if signal == "model" else t.sentiment_signal_hit
    query = select(
        func.count(t.id),
        func.sum(case((hit.is_(True), 1), else_=0)),
        func.avg(t.forward_return * direction),
    ).where(direction.is_not(None))
    with store.engine.connect() as conn:
        n, hits, mean = conn.execute(query).one()
    return GroupStats(
        n=int(n), hits=int(hits or 0), mean_return=None if mean is None else float(mean)
    )


def recent_model_hits(store: Store, model_version: str, window: int) -> tuple[int, int]:
    """(hits, n) of the model's signal over its newest ``window`` scored decisions with one."""
    t = DecisionScoreRow
    recent = (
        select(t.model_signal_hit)
        .where(t.model_version == model_version, t.model_signal_hit.is_not(None))
        .order_by(t.bar_ts.desc(), t.ticker)
        .limit(window)
    )
    with store.engine.connect() as conn:
        hits = [bool(h) for (h,) in conn.execute(recent)]
    return sum(hits), len(hits)


# --- model health -------------------------------------------------------------------------------
def model_health(store: Store, model_version: str) -> ModelHealth | None:
    with store.session() as s:
        row = s.get(ModelHealthRow, model_version)
        if row is None:
            return None
        return ModelHealth(
            model_version=row.model_version,
            degraded=bool(row.degraded),
            live_hits=row.live_hits,
            live_n=row.live_n,
            validated_accuracy=row.validated_accuracy,
            threshold=row.threshold,
            p_value=row.p_value,
            at=row.at,
        )


def save_model_health(store: Store, health: ModelHealth) -> None:
    """Upsert a version's health; a row already degraded keeps the numbers that degraded it."""
    t = ModelHealthRow
    stmt = store._insert(t).values(
        model_version=health.model_version,
        degraded=health.degraded,
        live_hits=health.live_hits,
        live_n=health.live_n,
        validated_accuracy=health.validated_accuracy,
        threshold=health.threshold,
        p_value=health.p_value,
        at=health.at,
    )
    columns = (
        "degraded",
        "live_hits",
        "live_n",
        "validated_accuracy",
        "threshold",
        "p_value",
        "at",
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["model_version"],
        set_={c: stmt.excluded[c] for c in columns},
        where=t.degraded.is_(False),
    )
    with store.session() as s:
        s.execute(stmt)
