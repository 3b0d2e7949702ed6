"""Bar quality flags, story title hashes, forced decisions, events, feed state, budgets.

Revision ID: 0002
Revises: 0001
"""

import hashlib
import re

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
    with op.batch_alter_table("news") as batch:
        batch.add_column(sa.Column("title_hash", sa.String(40), nullable=True))
    _backfill_title_hashes()
    op.create_index("ix_news_title_hash", "news", ["title_hash"])
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


def _backfill_title_hashes() -> None:
    """Stories stored by 0001 get the title hash the Store now matches on.

    Their old dedupe keys stay: they cannot collide with the new ``<hash>:<day>`` keys.
    """
    # Frozen copy of the Store's normalization at this revision (migrations never import app code).
    non_alnum = re.compile(r"[^0-9a-z]+")

    def title_hash(title: str) -> str:
        normalized = non_alnum.sub(" ", title.lower()).strip()
        return hashlib.sha1(normalized.encode("utf-8"), usedforsecurity=False).hexdigest()

    conn = op.get_bind()
    news = sa.table("news", sa.column("id", sa.Integer), sa.column("title", sa.Text),
                    sa.column("title_hash", sa.String))
    rows = conn.execute(sa.select(news.c.id, news.c.title)).all()
    for row_id, title in rows:
        conn.execute(
            news.update().where(news.c.id == row_id).values(title_hash=title_hash(title))
        )


def downgrade() -> None:
    op.drop_table("request_counts")
    op.drop_table("feed_state")
    op.drop_index("ix_events_kind_at", "events")
    op.drop_table("events")
    op.drop_index("ix_news_title_hash", "news")
    with op.batch_alter_table("news") as batch:
        batch.drop_column("title_hash")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("forced")
    with op.batch_alter_table("bars") as batch:
        batch.drop_column("flag_reason")
        batch.drop_column("flagged")
