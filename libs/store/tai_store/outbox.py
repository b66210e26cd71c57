"""The outbox relay: publishes committed outbox rows to the bus, at least once, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from tai_core.clock import Clock, SystemClock
from tai_store.database import Store
from tai_store.records import OutboxMessage

PublishRaw = Callable[[str, str, bytes, dict[str, object]], Awaitable[None]]
"""``publish_raw(exchange, routing_key, body, headers)``: e.g. ``MessageBus.publish_raw``."""

# Only one relay publishes at a time on PostgreSQL, so messages leave in commit order even
# with several relay replicas (SKIP LOCKED alone would let a second relay overtake the first).
RELAY_LOCK_KEY = 0x7A1_0B0C5


class OutboxRelay:
    """Moves outbox rows to the bus; marks each published only after ``publish_raw`` returned.

    Delivery is at-least-once: a crash between publishing and committing the mark republishes
    the message, and consumers deduplicate on ``message_id``. If ``publish_raw`` raises, the
    messages published before it are marked, the rest stay pending, and the error propagates.
    On PostgreSQL, concurrent relays are safe: rows are taken ``FOR UPDATE SKIP LOCKED`` under
    a transaction-scoped advisory lock (a relay that finds the lock held returns 0). On SQLite
    (embedded mode, one process) rows are read and marked in short transactions so that no
    write lock is held while publishing; this relay instance serialises its own calls.
    """

    def __init__(
        self, store: Store, publish_raw: PublishRaw, *, clock: Clock | None = None
    ) -> None:
        self._store = store
        self._publish_raw = publish_raw
        self._clock: Clock = clock or SystemClock()
        self._lock = asyncio.Lock()

    async def publish_pending(self, limit: int = 500) -> int:
        """Publish up to ``limit`` unpublished messages in id order; return how many went out."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        async with self._lock:
            if self._store.dialect == "postgresql":
                return await self._publish_locked(limit)
            return await self._publish_unlocked(limit)

    async def _publish_locked(self, limit: int) -> int:
        published: list[int] = []
        failure: BaseException | None = None
        async with self._store.transaction() as unit:
            acquired = await unit.session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": RELAY_LOCK_KEY}
            )
            if not acquired:
                return 0
            for message in await unit.outbox.pending(limit, lock=True):
                try:
                    await self._publish(message)
                except Exception as error:
                    failure = error
                    break
                published.append(message.id)
            await unit.outbox.mark_published(published, self._clock.now())
        if failure is not None:
            raise failure
        return len(published)

    async def _publish_unlocked(self, limit: int) -> int:
        async with self._store.transaction() as unit:
            pending = await unit.outbox.pending(limit)
        published: list[int] = []
        try:
            for message in pending:
                await self._publish(message)
                published.append(message.id)
        finally:
            if published:
                async with self._store.transaction() as unit:
                    await unit.outbox.mark_published(published, self._clock.now())
        return len(published)

    async def _publish(self, message: OutboxMessage) -> None:
        await self._publish_raw(
            message.exchange, message.routing_key, message.body, dict(message.headers)
        )
