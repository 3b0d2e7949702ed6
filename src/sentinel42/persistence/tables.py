"""SQLAlchemy 2 table classes (kept apart from the domain types; the Store converts).

Natural keys make every write idempotent: a bar is ``(ticker, interval, ts)``, a headline is
its normalized-title key, a score is ``(text_hash, scorer, revision)``, a prediction is
``(ticker, bar_ts, model_version)`` and a decision is ``(ticker, bar_ts, run_id)`` (numbered
``revision`` 0, 1, ... per ticker and bar).
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
    """One decision for a ticker and bar by one run (revisions and run ids: migration 0003).

    Revision 0 is the standing decision, the first recorded for the ticker and bar; a later run
    adds revision 1, 2, ... beside it. The same run saving again matches on ``run_id``.
    """

    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("ticker", "bar_ts", "revision", name="uq_decisions_revision"),
        UniqueConstraint("ticker", "bar_ts", "run_id", name="uq_decisions_run"),
        Index("ix_decisions_decided_at", "decided_at"),  # migration 0006
    )

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
    revision: Mapped[int] = mapped_column(Integer, default=0)
    run_id: Mapped[str] = mapped_column(String(64))


# --- added by migration 0002 ------------------------------------------------------------------


class EventRow(Base):
    """Things worth an audit trail: corporate actions, promotion refusals, no-data refreshes."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_kind_at", "kind", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    ticker: Mapped[str | None] = mapped_column(String(16), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime())  # the caller's clock (record_event)


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


# --- added by migration 0004: paper portfolio and validation ----------------------------------


class PortfolioStateRow(Base):
    """The paper portfolio after applying the standing decisions of one bar (``bar_ts``)."""

    __tablename__ = "portfolio_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bar_ts: Mapped[datetime] = mapped_column(UTCDateTime(), unique=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    trades: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    equity: Mapped[float] = mapped_column(Float)
    cash: Mapped[float] = mapped_column(Float)
    saved_at: Mapped[datetime]


class EquityPointRow(Base):
    """Paper-portfolio and buy-and-hold equity valued at the close of the bar starting at ``ts``."""

    __tablename__ = "equity_curve"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), unique=True)
    equity: Mapped[float] = mapped_column(Float)
    cash: Mapped[float] = mapped_column(Float)
    buy_and_hold_equity: Mapped[float] = mapped_column(Float)


class DecisionScoreRow(Base):
    """One standing decision scored, once, against the close ``horizon_bars`` bars later."""

    __tablename__ = "decision_scores"
    __table_args__ = (
        UniqueConstraint("ticker", "bar_ts", name="uq_decision_scores_key"),
        Index("ix_decision_scores_model", "model_version", "bar_ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticker: Mapped[str] = mapped_column(String(16))
    bar_ts: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(8))
    close: Mapped[float] = mapped_column(Float)
    exit_bar_ts: Mapped[datetime]
    exit_close: Mapped[float] = mapped_column(Float)
    horizon_bars: Mapped[int] = mapped_column(Integer)
    forward_return: Mapped[float] = mapped_column(Float)
    hit: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # None for HOLD
    model_signal: Mapped[int | None] = mapped_column(Integer, nullable=True)  # +1 up, -1 down
    model_signal_hit: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    sentiment_signal: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sentiment_signal_hit: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    scored_at: Mapped[datetime]


class ModelHealthRow(Base):
    """A model version's live skill against its validated accuracy; degraded is final."""

    __tablename__ = "model_health"

    model_version: Mapped[str] = mapped_column(String(100), primary_key=True)
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    live_hits: Mapped[int] = mapped_column(Integer)
    live_n: Mapped[int] = mapped_column(Integer)
    validated_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    p_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    at: Mapped[datetime]


class LegHealthRow(Base):
    """One fusion leg's live monitor for one model version as of one validate run.

    Keyed ``(leg, version, as_of)``: a repeated run with the same ``as_of`` rewrites its own row,
    and the newest row says whether the leg is degraded now (it may recover).
    """

    __tablename__ = "leg_health"
    __table_args__ = (UniqueConstraint("leg", "version", "as_of", name="uq_leg_health_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    leg: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(100))
    as_of: Mapped[datetime]
    tested: Mapped[bool] = mapped_column(Boolean)
    degraded: Mapped[bool] = mapped_column(Boolean)
    sessions: Mapped[int] = mapped_column(Integer)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text)
