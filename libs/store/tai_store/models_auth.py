"""Authentication tables: the server-side sessions behind tokens and cookies, login throttles.

A bearer token or a console cookie names a session row; deleting the row (logout, password or
role change, account removal, ``trading-ai users sessions revoke``) ends that access on the
next request. Login throttles count failed sign-ins per (account, source) and per source, so
guessing is slowed without letting anyone lock an account for everybody.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tai_store.models import Base, UtcTimestamp

SESSION_CHANNELS = ("api", "console")


class UserSessionRow(Base):
    """One signed-in session (an API token or a console cookie) of a user."""

    __tablename__ = "user_sessions"
    __table_args__ = (
        CheckConstraint("channel IN ('api', 'console')", name="channel"),
        Index("ix_user_sessions_username", "username"),
        Index("ix_user_sessions_expires_at", "expires_at"),
    )

    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    """SHA-256 (hex) of the session id: a database reader learns no usable id."""
    username: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    expires_at: Mapped[datetime] = mapped_column(UtcTimestamp)


class LoginThrottleRow(Base):
    """Failed sign-ins counted under one key (an account from a source, or a source)."""

    __tablename__ = "login_throttles"
    __table_args__ = (CheckConstraint("failures >= 0", name="failures"),)

    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    blocked_until: Mapped[datetime | None] = mapped_column(UtcTimestamp)
