"""Decision revisions: the first decision for a ticker and bar stands; later ones sit beside it.

A decision is keyed by ``(ticker, bar_ts, run_id)``; ``revision`` numbers them per ticker and
bar, 0 being the standing one. Decisions stored before this revision become revision 0 of their
bar, with the synthetic run id ``legacy-<id>``.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_decisions = sa.table(
    "decisions",
    sa.column("id", sa.Integer),
    sa.column("revision", sa.Integer),
    sa.column("run_id", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("revision", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("run_id", sa.String(64), nullable=True))
    # `||` on both SQLite and PostgreSQL.
    legacy_id = sa.literal("legacy-", sa.String) + sa.cast(_decisions.c.id, sa.String)
    op.execute(_decisions.update().values(run_id=legacy_id))
    with op.batch_alter_table("decisions") as batch:
        batch.alter_column("run_id", existing_type=sa.String(64), nullable=False)
        batch.drop_constraint("uq_decisions_key", type_="unique")
        batch.create_unique_constraint("uq_decisions_revision", ["ticker", "bar_ts", "revision"])
        batch.create_unique_constraint("uq_decisions_run", ["ticker", "bar_ts", "run_id"])


def downgrade() -> None:
    # The old schema holds one decision per ticker and bar: only the standing ones survive.
    op.execute(_decisions.delete().where(_decisions.c.revision != 0))
    with op.batch_alter_table("decisions") as batch:
        batch.drop_constraint("uq_decisions_run", type_="unique")
        batch.drop_constraint("uq_decisions_revision", type_="unique")
        batch.create_unique_constraint("uq_decisions_key", ["ticker", "bar_ts"])
        batch.drop_column("run_id")
        batch.drop_column("revision")
