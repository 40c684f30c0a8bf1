"""Make a passkey's name unique among its user's passkeys, numbering the names shared so far.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MAX_NAME_LENGTH = 64  # passkeys.name's length
passkeys = sa.table(
    "passkeys", sa.column("id", sa.Integer), sa.column("user_id", sa.Integer), sa.column("name")
)


def upgrade():
    """Rename the second and later passkeys of a user sharing a name ("Laptop 2", "Laptop 3",
    oldest first), then index (user_id, name) as unique in place of the index on user_id."""
    connection = op.get_bind()
    rows = connection.execute(sa.select(passkeys).order_by(passkeys.c.id)).all()
    taken = {(row.user_id, row.name) for row in rows}
    kept: set[tuple[int, str]] = set()
    for row in rows:
        name, number = row.name, 1
        while (row.user_id, name) in kept or (name != row.name and (row.user_id, name) in taken):
            number += 1
            suffix = f" {number}"
            name = row.name[: MAX_NAME_LENGTH - len(suffix)].rstrip() + suffix
        kept.add((row.user_id, name))
        if name != row.name:
            taken.add((row.user_id, name))
            update = passkeys.update().where(passkeys.c.id == row.id)
            connection.execute(update.values(name=name))
    op.create_index("ix_passkeys_user_id_name", "passkeys", ["user_id", "name"], unique=True)
    op.drop_index("ix_passkeys_user_id", table_name="passkeys")


def downgrade():
    """Index passkeys by user again, names not unique (the numbered names stay)."""
    op.create_index("ix_passkeys_user_id", "passkeys", ["user_id"])
    op.drop_index("ix_passkeys_user_id_name", table_name="passkeys")
