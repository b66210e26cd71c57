"""The outbox relay: publishes committed outbox rows to the bus, at least once, in order."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text

from tai_core.clock import Clock, SystemClock
from tai_core.periodic import PeriodicTask
from tai_store.database import Store
from tai_store.records import OutboxMessage

PublishRaw = Callable[[str, str, bytes, dict[str, object]], Awaitable[None]]
"""``publish_raw(exchange, routing_key, body, headers)``: e.g. ``MessageBus.publish_raw``."""

# Only one relay per producer publishes at a time on PostgreSQL, so a producer's messages leave
# in commit order even with several replicas (SKIP LOCKED alone would let one overtake another).
RELAY_LOCK_KEY = 0x7A1_0B0C5
_LOG = logging.getLogger(__name__)


def relay_lock_key(producer: str | None) -> int:
    """Return the advisory lock key of one producer's relay (all producers: the base key)."""
    if producer is None:
        return RELAY_LOCK_KEY
    digest = hashlib.sha256(producer.encode("utf-8")).digest()
    return RELAY_LOCK_KEY ^ int.from_bytes(digest[:4], "big")


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
        self,
        store: Store,
        publish_raw: PublishRaw,
        *,
        producer: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._producer = producer
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
                text("SELECT pg_try_advisory_xact_lock(:key)"),
                {"key": relay_lock_key(self._producer)},
            )
            if not acquired:
                return 0
            for message in await unit.outbox.pending(limit, lock=True, producer=self._producer):
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
            pending = await unit.outbox.pending(limit, producer=self._producer)
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


class OutboxSweeper:
    """A timer that publishes what no handler's relay call picked up (a crash, a lost race)."""

    def __init__(self, relay: OutboxRelay, interval_seconds: float) -> None:
        self._timer = PeriodicTask("outbox sweep", interval_seconds, relay.publish_pending)

    def start(self) -> None:
        """Start sweeping in the background."""
        self._timer.start()

    async def stop(self) -> None:
        """Stop sweeping."""
        await self._timer.stop()
