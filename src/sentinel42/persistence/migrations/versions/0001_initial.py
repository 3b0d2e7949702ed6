"""First schema: bars, news, sentiment, predictions, decisions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from sentinel42.persistence.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bars",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticker", sa.String(16), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("open", sa.Float, nullable=False),
        sa.Column("high", sa.Float, nullable=False),
        sa.Column("low", sa.Float, nullable=False),
        sa.Column("close", sa.Float, nullable=False),
        sa.Column("volume", sa.Float, nullable=False),
        sa.UniqueConstraint("ticker", "interval", "ts", name="uq_bars_key"),
    )
    op.create_table(
        "news",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("origin", sa.String(32), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_news_text_hash", "news", ["text_hash"])
    op.create_table(
        "news_tickers",
        sa.Column(
            "news_id", sa.Integer, sa.ForeignKey("news.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("ticker", sa.String(16), primary_key=True),
    )
    op.create_index("ix_news_tickers_ticker", "news_tickers", ["ticker"])
    op.create_table(
        "sentiment",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("scorer", sa.String(200), nullable=False),
        sa.Column("revision", sa.String(100), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("p_positive", sa.Float, nullable=False),
        sa.Column("p_negative", sa.Float, nullable=False),
        sa.Column("p_neutral", sa.Float, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("scored_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("text_hash", "scorer", "revision", name="uq_sentiment_key"),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticker", sa.String(16), nullable=False),
        sa.Column("bar_ts", UTCDateTime(), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("p_up", sa.Float, nullable=False),
        sa.Column("expected_return", sa.Float, nullable=False),
        sa.Column("model_accuracy", sa.Float, nullable=True),
        sa.Column("horizon_bars", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("ticker", "bar_ts", "model_version", name="uq_predictions_key"),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticker", sa.String(16), nullable=False),
        sa.Column("bar_ts", UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("ticker", "bar_ts", name="uq_decisions_key"),
    )


def downgrade() -> None:
    for table in ("decisions", "predictions", "sentiment", "news_tickers", "news", "bars"):
        op.drop_table(table)
