"""The score ledger: each standing decision scored against what the price did later, the
statistics over those scores, and each model version's live health.

A decision score is written once per ``(ticker, bar_ts)`` and never rewritten; a model's health
upserts on its version (once degraded, it stays degraded), so a retried run changes nothing.

All datetimes are tz-aware UTC; bar timestamps are bar starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from sqlalchemy import case, func, select

from sentinel42.domain import Action, DecisionScore, GroupStats, ModelHealth
from sentinel42.persistence.tables import DecisionScoreRow, ModelHealthRow

if TYPE_CHECKING:
    from sentinel42.persistence.store import Store


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
