"""User administration behind ``trading-ai users``: add, passwd, set-role, remove, list, revoke.

Every change that alters what a user may do (a new password, another role, removal, or an
explicit revocation) ends all of that user's sessions at once, API and console, and is
written to the audit log with the operator who made it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, update

from tai_core.clock import Clock, SystemClock
from tai_gateway.auth import PasswordHashing, Role, validate_username
from tai_gateway.ledger import GatewayLedger
from tai_gateway.passwords import check_password
from tai_gateway.sessions import SessionStore
from tai_store import Store
from tai_store.models import UserRow

GENERATED_PASSWORD_BYTES = 18
"""18 random bytes: a 24-character URL-safe password (144 bits)."""
CLI_CHANNEL = "cli"


class UnknownUserError(LookupError):
    """No user has this name."""


@dataclass(frozen=True, slots=True)
class UserSummary:
    """One line of ``trading-ai users list``."""

    username: str
    role: str
    created_at: datetime
    api_sessions: int
    console_sessions: int


class UserAdministration:
    """Create, change and remove users; each change revokes sessions and is audited."""

    def __init__(
        self,
        store: Store,
        *,
        operator: str,
        clock: Clock | None = None,
        hashing: PasswordHashing | None = None,
    ) -> None:
        self._store = store
        self._clock = clock or SystemClock()
        self._ledger = GatewayLedger(store, self._clock, account="")
        self._sessions = SessionStore(store, self._clock)
        self._hashing = hashing
        self._operator = operator[:128] or "cli"

    def _hasher(self) -> PasswordHashing:
        # Built on first use: the decoy hash costs one Argon2 run that list/remove never need.
        if self._hashing is None:
            self._hashing = PasswordHashing()
        return self._hashing

    async def _require(self, username: str) -> None:
        if await self._ledger.find_user(username) is None:
            raise UnknownUserError(f"no user {username!r}")

    async def _audit(self, action: str, username: str, details: dict[str, object]) -> None:
        await self._ledger.audit(
            actor=self._operator,
            action=action,
            subject=username,
            outcome="done",
            details={"channel": CLI_CHANNEL, **details},
        )

    async def add(self, username: str, password: str, role: str) -> None:
        """Create a user; raise ValueError for a bad name, a weak password or a taken name."""
        validate_username(username)
        check_password(password, username=username)
        checked_role = Role(role)
        if await self._ledger.find_user(username) is not None:
            raise ValueError(f"user {username!r} already exists")
        await self._ledger.add_user(
            username, self._hasher().hash(password), checked_role.value, self._clock.now()
        )
        await self._audit("user_added", username, {"role": checked_role.value})

    async def set_password(self, username: str, password: str) -> int:
        """Replace a user's password and end their sessions; return how many ended."""
        check_password(password, username=username)
        await self._require(username)
        password_hash = self._hasher().hash(password)
        async with self._store.transaction() as unit:
            await unit.session.execute(
                update(UserRow)
                .where(UserRow.username == username)
                .values(password_hash=password_hash, failed_attempts=0, locked_until=None)
            )
        ended = await self._sessions.revoke_user(username)
        await self._audit("user_password_changed", username, {"sessions_revoked": ended})
        return ended

    async def set_role(self, username: str, role: str) -> int:
        """Give a user another role and end their sessions; return how many ended."""
        checked_role = Role(role)
        await self._require(username)
        async with self._store.transaction() as unit:
            await unit.session.execute(
                update(UserRow).where(UserRow.username == username).values(role=checked_role.value)
            )
        ended = await self._sessions.revoke_user(username)
        await self._audit(
            "user_role_changed", username, {"role": checked_role.value, "sessions_revoked": ended}
        )
        return ended

    async def remove(self, username: str) -> int:
        """Delete a user and end their sessions; return how many ended."""
        await self._require(username)
        async with self._store.transaction() as unit:
            await unit.session.execute(delete(UserRow).where(UserRow.username == username))
        ended = await self._sessions.revoke_user(username)
        await self._audit("user_removed", username, {"sessions_revoked": ended})
        return ended

    async def revoke_sessions(self, username: str) -> int:
        """End every session of a user (API and console); return how many ended."""
        await self._require(username)
        ended = await self._sessions.revoke_user(username)
        await self._audit("user_sessions_revoked", username, {"sessions_revoked": ended})
        return ended

    async def list(self) -> list[UserSummary]:
        """Return every user with their role and live session counts."""
        async with self._store.transaction() as unit:
            users = await unit.users.list()
        counts = await self._sessions.counts()
        summaries = []
        for user in users:
            count = counts.get(user.username)
            summaries.append(
                UserSummary(
                    username=user.username,
                    role=str(user.role),
                    created_at=user.created_at,
                    api_sessions=count.api if count else 0,
                    console_sessions=count.console if count else 0,
                )
            )
        return summaries


async def add_user(
    store: Store, username: str, password: str, role: str, *, clock: Clock | None = None
) -> None:
    """Create a user with an Argon2id hash of ``password``; raise ValueError on bad input."""
    await UserAdministration(store, operator="system", clock=clock).add(username, password, role)


def generate_password() -> str:
    """Return a new random password suitable for a first login."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
