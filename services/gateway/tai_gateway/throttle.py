"""Login throttling that slows guessing without letting anyone lock an account out.

Failures are counted per (account, source) and per source, never per account alone: a
stranger hammering ``admin`` from one address slows only themselves, while the real admin
signs in from theirs. Past a number of free failures each further failure doubles the wait
(up to a ceiling); a key with no failure for ``forget_after`` starts afresh. Unknown and
known accounts are counted alike, so throttling reveals nothing about which names exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from tai_store import Store
from tai_store.models_auth import LoginThrottleRow

MAXIMUM_KEY_LENGTH = 256
PURGE_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Allow ``free_failures``; then wait ``base_delay`` doubled per failure, at most ``max``."""

    free_failures: int
    base_delay: timedelta
    max_delay: timedelta
    forget_after: timedelta

    def __post_init__(self) -> None:
        if self.free_failures < 1 or self.base_delay <= timedelta(0):
            raise ValueError("free_failures must be >= 1 and base_delay positive")
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must be at least base_delay")

    def blocked_until(self, failures: int, at: datetime) -> datetime | None:
        """Return until when a key with ``failures`` failures (the last at ``at``) must wait."""
        if failures < self.free_failures:
            return None
        doublings = min(failures - self.free_failures, 40)
        delay: timedelta = min(self.base_delay * (2**doublings), self.max_delay)
        return at + delay


def account_key(username: str, source: str) -> str:
    """Return the throttle key of one account name tried from one source."""
    return f"account:{username.lower()}|source:{source}"[:MAXIMUM_KEY_LENGTH]


def source_key(source: str) -> str:
    """Return the throttle key of a source (every account name it tries)."""
    return f"source:{source}"[:MAXIMUM_KEY_LENGTH]


class LoginThrottle:
    """Count failed sign-ins in the ledger database (shared by every gateway replica)."""

    def __init__(self, store: Store, *, per_account: BackoffPolicy, per_source: BackoffPolicy):
        self._store = store
        self._policies = {"account": per_account, "source": per_source}
        self._last_purge: datetime | None = None

    def _policy(self, key: str) -> BackoffPolicy:
        return self._policies[key.partition(":")[0]]

    async def wait(self, keys: list[str], now: datetime) -> timedelta | None:
        """Return how long the caller must still wait before trying, or None when it may."""
        async with self._store.transaction() as unit:
            rows = (
                await unit.session.scalars(
                    select(LoginThrottleRow).where(LoginThrottleRow.key.in_(keys))
                )
            ).all()
        waits = [
            row.blocked_until - now
            for row in rows
            if row.blocked_until is not None
            and row.blocked_until > now
            and now - row.last_failure_at < self._policy(row.key).forget_after
        ]
        return max(waits) if waits else None

    async def record_failure(self, keys: list[str], now: datetime) -> None:
        """Count one failure under each key (a key idle past ``forget_after`` restarts at 1)."""
        for key in keys:
            try:
                await self._count(key, now)
            except IntegrityError:
                await self._count(key, now)  # another replica inserted the key first
        await self._purge(now)

    async def _count(self, key: str, now: datetime) -> None:
        policy = self._policy(key)
        async with self._store.transaction() as unit:
            row = await unit.session.scalar(
                select(LoginThrottleRow)
                .where(LoginThrottleRow.key == key)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            if row is None:
                row = LoginThrottleRow(key=key, failures=0, last_failure_at=now)
                unit.session.add(row)
            elif now - row.last_failure_at >= policy.forget_after:
                row.failures = 0
            row.failures += 1
            row.last_failure_at = now
            row.blocked_until = policy.blocked_until(row.failures, now)

    async def clear(self, key: str) -> None:
        """Forget a key's failures (the account signed in from that source)."""
        async with self._store.transaction() as unit:
            await unit.session.execute(delete(LoginThrottleRow).where(LoginThrottleRow.key == key))

    async def _purge(self, now: datetime) -> None:
        # Bound the table: keys idle past the longest forget_after carry nothing.
        if self._last_purge is not None and now - self._last_purge < PURGE_INTERVAL:
            return
        self._last_purge = now
        horizon = max(policy.forget_after for policy in self._policies.values())
        async with self._store.transaction() as unit:
            await unit.session.execute(
                delete(LoginThrottleRow).where(LoginThrottleRow.last_failure_at < now - horizon)
            )
