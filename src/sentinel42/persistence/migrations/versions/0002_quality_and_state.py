"""Bar quality flags, forced decisions, events, feed validators, request budgets.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from sentinel42.persistence.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bars") as batch:
        batch.add_column(sa.Column("flagged", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("flag_reason", sa.String(200), nullable=True))
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("ticker", sa.String(16), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_events_kind_at", "events", ["kind", "at"])
    op.create_table(
        "feed_state",
        sa.Column("url", sa.Text, primary_key=True),
        sa.Column("etag", sa.Text, nullable=True),
        sa.Column("last_modified", sa.Text, nullable=True),
    )
    op.create_table(
        "request_counts",
        sa.Column("source", sa.String(32), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("request_counts")
    op.drop_table("feed_state")
    op.drop_index("ix_events_kind_at", "events")
    op.drop_table("events")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("forced")
    with op.batch_alter_table("bars") as batch:
        batch.drop_column("flag_reason")
        batch.drop_column("flagged")
