"""Let an account have no password: one single sign-on made signs in at its provider only.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    """Make users.password_hash nullable (NULL: no password until a reset sets one)."""
    with op.batch_alter_table("users") as batch:  # SQLite alters a table by copying it
        batch.alter_column("password_hash", existing_type=sa.String(255), nullable=True)


def downgrade():
    """Make users.password_hash required again; refused while an account has none."""
    with op.batch_alter_table("users") as batch:
        batch.alter_column("password_hash", existing_type=sa.String(255), nullable=False)
