"""The gateway's view of the store: users, audit rows, and the read queries it shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import text

from tai_core.clock import Clock
from tai_store import Store, TradingStateChange, User, queries


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A stored user as the login flow needs it."""

    username: str
    password_hash: str
    role: str
    failed_attempts: int
    locked_until: datetime | None


class GatewayLedger:
    """Read and write what the gateway keeps in the store (one place knows the store's API)."""

    def __init__(self, store: Store, clock: Clock, account: str) -> None:
        self._store = store
        self._clock = clock
        self.account = account

    async def find_user(self, username: str) -> UserRecord | None:
        """Return the user or None."""
        async with self._store.transaction() as unit:
            row = await unit.users.get(username)
        return None if row is None else _record_of(row)

    async def add_user(self, username: str, password_hash: str, role: str, at: datetime) -> None:
        """Store a new user."""
        async with self._store.transaction() as unit:
            await unit.users.add(username, password_hash, role, at)

    async def record_login_failure(
        self, username: str, at: datetime, lock_after: int, lock_for: timedelta
    ) -> UserRecord | None:
        """Count a failed login (a lapsed lock-out starts a fresh count); return the user."""
        async with self._store.transaction() as unit:
            user = await unit.users.get(username)
            if user is None:
                return None
            if user.locked_until is not None and not user.is_locked(at):
                await unit.users.reset_failures(username)
            updated = await unit.users.record_failure(username, at, lock_after, lock_for)
        return None if updated is None else _record_of(updated)

    async def reset_login_failures(self, username: str) -> None:
        """Clear failures and any lock-out after a successful login."""
        async with self._store.transaction() as unit:
            await unit.users.reset_failures(username)

    async def audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        outcome: str,
        details: dict[str, Any],
    ) -> None:
        """Append one audit row, stamped now."""
        async with self._store.transaction() as unit:
            await unit.audit.record(actor, action, subject, outcome, details, self._clock.now())

    async def ping(self) -> bool:
        """Return True when the database answers."""
        try:
            async with self._store.transaction() as unit:
                await unit.session.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def fills(self, limit: int, symbol: str | None = None) -> pd.DataFrame:
        """Return the newest ``limit`` fills, newest first."""
        frame = queries.fills(self._store.sync_engine(), symbol=symbol)
        return frame.tail(limit).iloc[::-1].reset_index(drop=True)

    def equity_curve(self) -> pd.DataFrame:
        """Return the account's equity over time (columns taken_at, cash, equity)."""
        return queries.equity_curve(self._store.sync_engine(), self.account).reset_index()

    def positions(self) -> pd.DataFrame:
        """Return the account's current positions."""
        return queries.positions(self._store.sync_engine(), self.account)

    def orders(self, limit: int) -> pd.DataFrame:
        """Return the newest orders."""
        return queries.orders(self._store.sync_engine(), limit=limit)

    def audit_log(self, limit: int) -> pd.DataFrame:
        """Return the newest audit rows."""
        return queries.audit(self._store.sync_engine(), limit=limit)

    def trading_state(self) -> TradingStateChange | None:
        """Return the trading-state change in force, or None when none was recorded."""
        return queries.trading_state(self._store.sync_engine())


def _record_of(user: User) -> UserRecord:
    return UserRecord(
        username=user.username,
        password_hash=user.password_hash,
        role=str(user.role.value),
        failed_attempts=user.failed_attempts,
        locked_until=user.locked_until,
    )
