"""Paper portfolio and validation: portfolio state, equity curve, decision scores, model health.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from sentinel42.persistence.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portfolio_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("bar_ts", UTCDateTime(), nullable=False, unique=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("trades", sa.JSON, nullable=False),
        sa.Column("equity", sa.Float, nullable=False),
        sa.Column("cash", sa.Float, nullable=False),
        sa.Column("saved_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "equity_curve",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ts", UTCDateTime(), nullable=False, unique=True),
        sa.Column("equity", sa.Float, nullable=False),
        sa.Column("cash", sa.Float, nullable=False),
        sa.Column("buy_and_hold_equity", sa.Float, nullable=False),
    )
    op.create_table(
        "decision_scores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ticker", sa.String(16), nullable=False),
        sa.Column("bar_ts", UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("close", sa.Float, nullable=False),
        sa.Column("exit_bar_ts", UTCDateTime(), nullable=False),
        sa.Column("exit_close", sa.Float, nullable=False),
        sa.Column("horizon_bars", sa.Integer, nullable=False),
        sa.Column("forward_return", sa.Float, nullable=False),
        sa.Column("hit", sa.Boolean, nullable=True),
        sa.Column("model_signal", sa.Integer, nullable=True),
        sa.Column("model_signal_hit", sa.Boolean, nullable=True),
        sa.Column("sentiment_signal", sa.Integer, nullable=True),
        sa.Column("sentiment_signal_hit", sa.Boolean, nullable=True),
        sa.Column("model_version", sa.String(100), nullable=True),
        sa.Column("scored_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("ticker", "bar_ts", name="uq_decision_scores_key"),
    )
    op.create_index("ix_decision_scores_model", "decision_scores", ["model_version", "bar_ts"])
    op.create_table(
        "model_health",
        sa.Column("model_version", sa.String(100), primary_key=True),
        sa.Column("degraded", sa.Boolean, nullable=False),
        sa.Column("live_hits", sa.Integer, nullable=False),
        sa.Column("live_n", sa.Integer, nullable=False),
        sa.Column("validated_accuracy", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("p_value", sa.Float, nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_health")
    op.drop_index("ix_decision_scores_model", "decision_scores")
    op.drop_table("decision_scores")
    op.drop_table("equity_curve")
    op.drop_table("portfolio_state")
