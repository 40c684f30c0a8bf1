"""Store each user's second factor (an encrypted authenticator secret) and recovery codes.

Revision ID: 0008
Revises: {{ "0007" if cookiecutter.use_frontend == "yes" else "0006" }}
Create Date: 2026-11-29 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "{{ "0007" if cookiecutter.use_frontend == "yes" else "0006" }}"
branch_labels = None
depends_on = None


def upgrade():
    """Add second_factors (one per user, off until enabled_at) and recovery_codes (hashes)."""
    op.create_table(
        "second_factors",
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("secret", sa.String(255), nullable=False),
        sa.Column("enabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])


def downgrade():
    """Drop recovery_codes and second_factors."""
    op.drop_index("ix_recovery_codes_user_id", table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_table("second_factors")
