"""Reads and deletes for operations: summaries for the metrics exporter, batched retention deletes.

Everything here reads or deletes through the store's engine. A delete removes at most
``batch_size`` rows per transaction, so a long prune never holds the SQLite write lock for long
and the trading runs' writes interleave with it. Timestamps are tz-aware UTC; a bar's ``ts`` is
its start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, exists, func, select

from sentinel42.persistence.tables import (
    BarRow,
    DecisionRow,
    DecisionScoreRow,
    NewsRow,
    NewsTickerRow,
    SentimentRow,
)

if TYPE_CHECKING:
    from sentinel42.persistence.store import Store

DAILY_INTERVAL = "1d"  # the same value as sentinel42.market.base.DAILY (persistence stays below)


@dataclass(frozen=True, slots=True)
class LastDecision:
    """The standing decision of a ticker's newest decided bar."""

    ticker: str
    bar_ts: datetime
    action: str
    confidence: float


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- summaries (metrics) ------------------------------------------------------------------------
def scores_by_scorer(store: Store) -> dict[str, int]:
    """Stored headline scores per scorer name."""
    query = select(SentimentRow.scorer, func.count(SentimentRow.id)).group_by(SentimentRow.scorer)
    with store.engine.connect() as conn:
        return {str(scorer): int(n) for scorer, n in conn.execute(query)}


def newest_scorer(store: Store) -> tuple[str, str] | None:
    """``(scorer, revision)`` of the most recently stored score, or None before any."""
    query = (
        select(SentimentRow.scorer, SentimentRow.revision).order_by(SentimentRow.id.desc()).limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return (str(row[0]), str(row[1])) if row else None


def decisions_by_action(store: Store) -> dict[str, int]:
    """Standing decisions (revision 0) per action."""
    query = (
        select(DecisionRow.action, func.count(DecisionRow.id))
        .where(DecisionRow.revision == 0)
        .group_by(DecisionRow.action)
    )
    with store.engine.connect() as conn:
        return {str(action): int(n) for action, n in conn.execute(query)}


def last_decisions(store: Store, tickers: Sequence[str]) -> dict[str, LastDecision]:
    """Per ticker, the standing decision of its newest decided bar (tickers without one: absent)."""
    newest = (
        select(DecisionRow.ticker, func.max(DecisionRow.bar_ts).label("bar_ts"))
        .where(DecisionRow.revision == 0, DecisionRow.ticker.in_(list(tickers)))
        .group_by(DecisionRow.ticker)
        .subquery()
    )
    query = select(
        DecisionRow.ticker, DecisionRow.bar_ts, DecisionRow.action, DecisionRow.confidence
    ).join(
        newest,
        and_(
            DecisionRow.ticker == newest.c.ticker,
            DecisionRow.bar_ts == newest.c.bar_ts,
            DecisionRow.revision == 0,
        ),
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {
        str(t): LastDecision(str(t), _aware(ts), str(action), float(conf))
        for t, ts, action, conf in rows
    }


def row_counts(store: Store) -> dict[str, int]:
    """Rows per pruned table (bars, news, sentiment), to watch retention work."""
    tables = {"bars": BarRow.id, "news": NewsRow.id, "sentiment": SentimentRow.id}
    with store.engine.connect() as conn:
        return {
            name: int(conn.execute(select(func.count(column))).scalar_one())
            for name, column in tables.items()
        }


# --- retention ----------------------------------------------------------------------------------
def oldest_unscored_decision(store: Store, *, since: datetime) -> datetime | None:
    """Bar start of the oldest standing decision at or after ``since`` that has no score yet."""
    scored = exists().where(
        DecisionScoreRow.ticker == DecisionRow.ticker,
        DecisionScoreRow.bar_ts == DecisionRow.bar_ts,
    )
    query = select(func.min(DecisionRow.bar_ts)).where(
        DecisionRow.revision == 0, DecisionRow.bar_ts >= since, ~scored
    )
    with store.engine.connect() as conn:
        value = conn.execute(query).scalar_one_or_none()
    return None if value is None else _aware(value)


def delete_bars_before(
    store: Store, cutoff: datetime, *, daily: bool, batch_size: int = 5_000
) -> int:
    """Delete bars starting before ``cutoff``: the daily ones or every intraday interval."""
    interval = BarRow.interval == DAILY_INTERVAL if daily else BarRow.interval != DAILY_INTERVAL
    pick = select(BarRow.id).where(interval, BarRow.ts < int(cutoff.timestamp()))
    return _delete_batches(store, BarRow, pick, batch_size)


def delete_news_before(store: Store, cutoff: datetime, *, batch_size: int = 5_000) -> int:
    """Delete headlines published before ``cutoff``, with their ticker links."""
    pick = select(NewsRow.id).where(NewsRow.published_at < cutoff)
    deleted = 0
    while True:
        with store.session() as s:
            ids = list(s.scalars(pick.limit(batch_size)))
            if ids:
                # Explicit, not only ON DELETE CASCADE: a connection without foreign keys on.
                s.execute(delete(NewsTickerRow).where(NewsTickerRow.news_id.in_(ids)))
                s.execute(delete(NewsRow).where(NewsRow.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted


def delete_orphan_scores(store: Store, *, batch_size: int = 5_000) -> int:
    """Delete scores whose text no stored headline has any more (their headlines were pruned)."""
    headline = exists().where(NewsRow.text_hash == SentimentRow.text_hash)
    pick = select(SentimentRow.id).where(~headline)
    return _delete_batches(store, SentimentRow, pick, batch_size)


def _delete_batches(store: Store, table: Any, pick: Any, batch_size: int) -> int:
    deleted = 0
    while True:
        with store.session() as s:
            ids = list(s.scalars(pick.limit(batch_size)))
            if ids:
                s.execute(delete(table).where(table.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted
