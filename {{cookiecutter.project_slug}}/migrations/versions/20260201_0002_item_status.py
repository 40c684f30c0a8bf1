"""Give items a status and the time they were processed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    """Add status (existing items count as processed) and processed_at."""
    with op.batch_alter_table("items") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=20), server_default="processed", nullable=False)
        )
        batch.add_column(sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    """Drop status and processed_at."""
    with op.batch_alter_table("items") as batch:
        batch.drop_column("processed_at")
        batch.drop_column("status")
