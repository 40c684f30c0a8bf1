"""Record when each user proved their address; every user so far counts as verified.

Revision ID: 0005
Revises: {{ "0004" if cookiecutter.use_frontend == "yes" else "0003" }}
Create Date: 2026-11-27 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "{{ "0004" if cookiecutter.use_frontend == "yes" else "0003" }}"
branch_labels = None
depends_on = None


def upgrade():
    """Add users.email_verified_at; users made before sign-up existed are verified."""
    with op.batch_alter_table("users") as batch:  # SQLite alters a table by copying it
        batch.add_column(sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True))
    users = sa.table("users", sa.column("email_verified_at"), sa.column("created_at"))
    op.execute(users.update().values(email_verified_at=users.c.created_at))


def downgrade():
    """Drop users.email_verified_at."""
    with op.batch_alter_table("users") as batch:
        batch.drop_column("email_verified_at")
