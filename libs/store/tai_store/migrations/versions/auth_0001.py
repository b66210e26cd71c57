"""Create the authentication tables (user_sessions, login_throttles).

Revision ID: auth_0001
Revises: 0001
Create Date: 2026-02-01 00:00:00

A branch off the initial revision; Store.migrate upgrades to every head. Column types are
spelled out so the revision never changes when the models do.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "auth_0001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the session and throttle tables."""
    op.create_table(
        "user_sessions",
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("channel IN ('api', 'console')", name=op.f("ck_user_sessions_channel")),
        sa.PrimaryKeyConstraint("session_hash", name=op.f("pk_user_sessions")),
    )
    op.create_index("ix_user_sessions_username", "user_sessions", ["username"])
    op.create_index("ix_user_sessions_expires_at", "user_sessions", ["expires_at"])
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", TIMESTAMP, nullable=False),
        sa.Column("blocked_until", TIMESTAMP, nullable=True),
        sa.CheckConstraint("failures >= 0", name=op.f("ck_login_throttles_failures")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )


def downgrade() -> None:
    """Drop the session and throttle tables."""
    op.drop_table("login_throttles")
    op.drop_index("ix_user_sessions_expires_at", table_name="user_sessions")
    op.drop_index("ix_user_sessions_username", table_name="user_sessions")
    op.drop_table("user_sessions")
