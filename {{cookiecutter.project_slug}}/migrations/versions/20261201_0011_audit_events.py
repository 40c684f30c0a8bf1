"""Keep the audit trail: a row for each security event of an account.

Revision ID: 0011
Revises: {{ "0010" if cookiecutter.use_frontend == "yes" else "0009" }}
Create Date: 2026-12-01 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "{{ "0010" if cookiecutter.use_frontend == "yes" else "0009" }}"
branch_labels = None
depends_on = None


def upgrade():
    """Add audit_events, found by time, by action, and by user then time. A user's removal
    leaves its events, naming no one."""
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("actor_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("detail", sa.String(32)),
        sa.Column("client_address", sa.String(64)),
        sa.Column("request_id", sa.String(128)),
        sa.Column("user_agent", sa.String(200)),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_action", "audit_events", ["action"])
    op.create_index("ix_audit_events_user_id_at", "audit_events", ["user_id", "at"])


def downgrade():
    """Drop audit_events (and its indexes)."""
    op.drop_table("audit_events")
