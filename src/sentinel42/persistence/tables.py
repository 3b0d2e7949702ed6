"""SQLAlchemy 2 table classes (kept apart from the domain types; the Store converts).

Natural keys make every write idempotent: a bar is ``(ticker, interval, ts)``, a headline is
its normalized-title key, a score is ``(text_hash, scorer, revision)``, a prediction is
``(ticker, bar_ts, model_version)`` and a decision is ``(ticker, bar_ts)``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stores tz-aware datetimes as naive UTC; returns tz-aware UTC. Rejects naive input."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; give it a timezone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class BarRow(Base):
    """One OHLCV bar. ``ts`` is the bar's start in epoch seconds (UTC): compact and fast."""

    __tablename__ = "bars"
    __table_args__ = (UniqueConstraint("ticker", "interval", "ts", name="uq_bars_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(16))
    interval: Mapped[str] = mapped_column(String(8))
    ts: Mapped[int] = mapped_column(BigInteger)
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float] = mapped_column(Float)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class NewsRow(Base):
    __tablename__ = "news"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    title_hash: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    url: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(32), default="")
    published_at: Mapped[datetime]
    first_seen_at: Mapped[datetime]
    text_hash: Mapped[str] = mapped_column(String(64), index=True)


class NewsTickerRow(Base):
    __tablename__ = "news_tickers"
    __table_args__ = (Index("ix_news_tickers_ticker", "ticker"),)

    news_id: Mapped[int] = mapped_column(
        ForeignKey("news.id", ondelete="CASCADE"), primary_key=True
    )
    ticker: Mapped[str] = mapped_column(String(16), primary_key=True)


class SentimentRow(Base):
    __tablename__ = "sentiment"
    __table_args__ = (UniqueConstraint("text_hash", "scorer", "revision", name="uq_sentiment_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64))
    scorer: Mapped[str] = mapped_column(String(200))
    revision: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(16))
    p_positive: Mapped[float] = mapped_column(Float)
    p_negative: Mapped[float] = mapped_column(Float)
    p_neutral: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    scored_at: Mapped[datetime]


class PredictionRow(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("ticker", "bar_ts", "model_version", name="uq_predictions_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(16))
    bar_ts: Mapped[datetime]
    model_version: Mapped[str] = mapped_column(String(100))
    p_up: Mapped[float] = mapped_column(Float)
    expected_return: Mapped[float] = mapped_column(Float)
    model_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    horizon_bars: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class DecisionRow(Base):
    __tablename__ = "decisions"
    __table_args__ = (UniqueConstraint("ticker", "bar_ts", name="uq_decisions_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(16))
    bar_ts: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    models: Mapped[dict[str, Any]] = mapped_column(JSON)
    decided_at: Mapped[datetime]
    forced: Mapped[bool] = mapped_column(Boolean, default=False)


# --- added by migration 0002 ------------------------------------------------------------------


class EventRow(Base):
    """Things worth an audit trail: corporate actions, promotion refusals, no-data refreshes."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_kind_at", "kind", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    ticker: Mapped[str | None] = mapped_column(String(16), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=lambda: datetime.now(UTC))


class FeedStateRow(Base):
    """HTTP validators of each feed, for conditional requests."""

    __tablename__ = "feed_state"

    url: Mapped[str] = mapped_column(Text, primary_key=True)
    etag: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_modified: Mapped[str | None] = mapped_column(Text, nullable=True)


class RequestCountRow(Base):
    """Requests spent per source and UTC day (NewsAPI's daily budget)."""

    __tablename__ = "request_counts"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
