"""Give each user a role, user or admin; every user so far is a user.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    """Add users.role ('user' unless `flask users promote` made it 'admin')."""
    with op.batch_alter_table("users") as batch:  # SQLite alters a table by copying it
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="user"))
        batch.create_check_constraint("users_role_known", "role IN ('user', 'admin')")


def downgrade():
    """Drop users.role."""
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("users_role_known", type_="check")
        batch.drop_column("role")
