"""Live monitoring: per-leg health, one row per leg, model version and validate run.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from sentinel42.persistence.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leg_health",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("leg", sa.String(32), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("tested", sa.Boolean, nullable=False),
        sa.Column("degraded", sa.Boolean, nullable=False),
        sa.Column("sessions", sa.Integer, nullable=False),
        sa.Column("figures", sa.JSON, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.UniqueConstraint("leg", "version", "as_of", name="uq_leg_health_key"),
    )


def downgrade() -> None:
    op.drop_table("leg_health")
