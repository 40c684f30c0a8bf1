"""Store the identities at an OpenID Connect provider that sign users in (single sign-on).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 00:00:01
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    """Add identities: a provider's (issuer, subject) pair, linked to one user (one per provider;
    that unique index finds a user's identities too)."""
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("issuer", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("issuer", "subject", name="identities_issuer_subject"),
        sa.UniqueConstraint("user_id", "issuer", name="identities_user_issuer"),
    )


def downgrade():
    """Drop identities."""
    op.drop_table("identities")
