"""Keep the audit trail's user ids as plain columns: no foreign keys to users.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None
KEYS = ("user_id", "actor_id")
# SQLite's keys have no names: batch mode reflects them under PostgreSQL's names for them.
NAMES = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}


def upgrade():
    """Drop the foreign keys of audit_events.user_id and actor_id. Checking one locked the
    user's row for each event written: a failed sign-in of a known account took longer than one
    of an unknown address (a row naming no one), which told which addresses have accounts. A row
    is never changed once written (a removed user's ids stay as they were)."""
    with op.batch_alter_table("audit_events", naming_convention=NAMES) as batch:
        for column in KEYS:
            batch.drop_constraint(f"audit_events_{column}_fkey", type_="foreignkey")


def downgrade():
    """Check the ids against users again (an id of a removed user becomes NULL first)."""
    for column in KEYS:
        gone = sa.text(
            f"UPDATE audit_events SET {column} = NULL"  # noqa: S608  # the names above, no input
            f" WHERE {column} NOT IN (SELECT id FROM users)"
        )
        op.execute(gone)
    with op.batch_alter_table("audit_events") as batch:
        for column in KEYS:
            name = f"audit_events_{column}_fkey"
            batch.create_foreign_key(name, "users", [column], ["id"], ondelete="SET NULL")
