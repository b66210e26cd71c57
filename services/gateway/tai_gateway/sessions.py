"""Server-side sessions: every API token and console cookie names a row that can be revoked.

A token or cookie alone proves nothing: each request looks its session up together with the
user's current record, so a logout, a password or role change, a removal or ``trading-ai
users sessions revoke`` ends that user's access on the next request, on API and console
alike. The role is always the stored one, never what the client holds. Works on PostgreSQL
and on the embedded SQLite ledger (no Redis needed).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from tai_core.clock import Clock
from tai_gateway.auth import Principal, Role
from tai_store import Store
from tai_store.models import UserRow
from tai_store.models_auth import SESSION_CHANNELS, UserSessionRow

SESSION_ID_BYTES = 32


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """A new session's secret id (given to the client only) and its expiry."""

    session_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SessionCount:
    """How many live sessions a user has on each channel."""

    username: str
    api: int
    console: int


class SessionStore:
    """Open, check and revoke sessions in the ledger database."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def open(
        self, username: str, *, channel: str, source: str, lifetime: timedelta
    ) -> OpenedSession:
        """Store a new session for ``username`` and return its id (shown to nobody else)."""
        if channel not in SESSION_CHANNELS:
            raise ValueError(f"unknown session channel {channel!r}")
        now = self._clock.now()
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        expires_at = now + lifetime
        async with self._store.transaction() as unit:
            # Keep the table small: a user's expired sessions go when a new one starts.
            await unit.session.execute(
                delete(UserSessionRow).where(
                    UserSessionRow.username == username, UserSessionRow.expires_at <= now
                )
            )
            unit.session.add(
                UserSessionRow(
                    session_hash=_hash(session_id),
                    username=username,
                    channel=channel,
                    source=source[:128],
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        return OpenedSession(session_id, expires_at)

    async def principal(self, session_id: str, username: str) -> Principal | None:
        """Return who holds this live session, with the role stored now; None when it is gone.

        None when the session was revoked or expired, belongs to someone else, or the user
        was removed.
        """
        statement = (
            select(UserRow.username, UserRow.role)
            .join(UserSessionRow, UserSessionRow.username == UserRow.username)
            .where(
                UserSessionRow.session_hash == _hash(session_id),
                UserSessionRow.username == username,
                UserSessionRow.expires_at > self._clock.now(),
            )
        )
        async with self._store.transaction() as unit:
            row = (await unit.session.execute(statement)).first()
        if row is None:
            return None
        return Principal(row.username, Role(row.role))

    async def revoke(self, session_id: str) -> None:
        """End one session."""
        async with self._store.transaction() as unit:
            await unit.session.execute(
                delete(UserSessionRow).where(UserSessionRow.session_hash == _hash(session_id))
            )

    async def revoke_user(self, username: str) -> int:
        """End every session of ``username`` (API and console); return how many there were."""
        async with self._store.transaction() as unit:
            result = await unit.session.execute(
                delete(UserSessionRow).where(UserSessionRow.username == username)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def counts(self) -> dict[str, SessionCount]:
        """Return each user's live session count per channel."""
        statement = (
            select(UserSessionRow.username, UserSessionRow.channel, func.count())
            .where(UserSessionRow.expires_at > self._clock.now())
            .group_by(UserSessionRow.username, UserSessionRow.channel)
        )
        async with self._store.transaction() as unit:
            rows = (await unit.session.execute(statement)).all()
        per_user: dict[str, dict[str, int]] = {}
        for username, channel, count in rows:
            per_user.setdefault(username, {})[channel] = int(count)
        return {
            name: SessionCount(name, channels.get("api", 0), channels.get("console", 0))
            for name, channels in per_user.items()
        }
