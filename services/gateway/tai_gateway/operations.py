"""Broker operations for the System tab: queue depths, consumer counts and dead letters.

RabbitMQ's management API is not assumed: queue statistics come from passive queue declares
over AMQP (the broker answers with message and consumer counts), and dead letters are read
with ``basic.get``. Reading a dead letter re-publishes an identical copy to the dead-letter
exchange before acknowledging the original, so looking never spends a quorum queue's
delivery limit and never loses a message.

Requeueing sends a dead letter back to the queue it died in (only there: the queues that
handled it already do not see it twice) without the gateway publishing its routing key, which
its broker user may not: the copy goes to the dead-letter exchange with a CC header naming
the requeue queue and the target queue, and the broker itself moves it on (see
``tai_events.topics.REQUEUE_QUEUE``). So a bar, a fill, an approval or a control command are
all requeued by the same right the gateway already has.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from tai_bus import InMemoryBus
from tai_bus.api import REQUEUE_MARKER_HEADER, DeadLetter
from tai_events.topics import DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, queue_name
from tai_telemetry.logging import get_logger

DEFAULT_QUEUES = (
    queue_name("strategy", "bars"),
    queue_name("risk", "orders"),
    queue_name("risk", "market"),
    queue_name("risk", "fills"),
    queue_name("risk", "order-states"),
    queue_name("risk", "control"),
    queue_name("execution", "approvals"),
    queue_name("execution", "market"),
    queue_name("gateway", "stream"),
    queue_name("notifier", "notifications"),
    DEAD_LETTER_QUEUE,
)
"""The queues the System tab watches (every service's consuming queue and the dead letters)."""
MAXIMUM_DEAD_LETTERS = 200


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Depth and consumers of one queue; ``error`` says why the numbers are missing."""

    queue: str
    messages: int | None
    consumers: int | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetterView:
    """A dead letter as the console shows it."""

    message_id: str
    message_type: str
    routing_key: str
    exchange: str
    queue: str
    reason: str
    body: str


class DeadLetterNotFoundError(LookupError):
    """No dead letter has that message id (already requeued or discarded)."""


class RequeueTargetMissingError(LookupError):
    """The queue a dead letter died in no longer exists: there is nowhere to requeue it."""


class BrokerOperations(Protocol):
    """Queue statistics and dead-letter handling for one transport."""

    async def queue_stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Return depth and consumer count of each queue."""
        ...

    async def dead_letters(self, limit: int) -> list[DeadLetterView]:
        """Return up to ``limit`` dead letters, oldest first."""
        ...

    async def requeue(self, message_id: str) -> DeadLetterView:
        """Send a dead letter back to the queue it died in and remove it."""
        ...

    async def discard(self, message_id: str) -> DeadLetterView:
        """Remove a dead letter for good."""
        ...


def _view(letter: DeadLetter) -> DeadLetterView:
    headers: Mapping[str, object] = letter.headers
    return DeadLetterView(
        message_id=str(headers.get("message_id", "")),
        message_type=str(headers.get("type", "")),
        routing_key=letter.routing_key,
        exchange=letter.exchange,
        queue=letter.queue,
        reason=letter.reason,
        body=letter.body.decode("utf-8", errors="replace")[:2000],
    )


class MemoryOperations:
    """Operations of the embedded in-memory bus (its dead letters live in the bus)."""

    def __init__(self, bus: InMemoryBus) -> None:
        self._bus = bus

    async def queue_stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Report that the in-process bus has no broker queues (everything is delivered inline)."""
        return [
            QueueStats(queue, None, None, "in-process bus: no broker queue") for queue in queues
        ]

    async def dead_letters(self, limit: int) -> list[DeadLetterView]:
        """Return the bus's dead letters, oldest first."""
        return [_view(letter) for letter in self._bus.dead_letters[:limit]]

    def _take(self, message_id: str) -> DeadLetter:
        for index, letter in enumerate(self._bus.dead_letters):
            if str(letter.headers.get("message_id", "")) == message_id:
                return self._bus.dead_letters.pop(index)
        raise DeadLetterNotFoundError(message_id)

    async def requeue(self, message_id: str) -> DeadLetterView:
        """Put the dead letter back on the queue it died in."""
        letter = self._take(message_id)
        try:
            self._bus.requeue(letter)
        except LookupError as error:
            self._bus.dead_letters.append(letter)
            raise RequeueTargetMissingError(letter.queue) from error
        return _view(letter)

    async def discard(self, message_id: str) -> DeadLetterView:
        """Forget the dead letter."""
        return _view(self._take(message_id))


class AmqpOperations:
    """Operations over AMQP on a connection of the gateway's own."""

    def __init__(self, amqp_url: str) -> None:
        self._url = amqp_url
        self._logger = get_logger("tai_gateway.operations")
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> aio_pika.abc.AbstractRobustConnection:
        if self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect_robust(
                self._url, client_properties={"connection_name": "gateway-operations"}
            )
        return self._connection

    async def close(self) -> None:
        """Close the operations connection."""
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def queue_stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Passively declare each queue: the broker answers with its message and consumer counts."""
        connection = await self._connect()
        stats = []
        for name in queues:
            # A passive declare of a missing queue closes the channel: one channel per queue.
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
                result = queue.declaration_result
                stats.append(QueueStats(name, result.message_count, result.consumer_count))
            except aio_pika.exceptions.ChannelClosed:
                stats.append(QueueStats(name, None, None, "queue does not exist"))
            finally:
                if not channel.is_closed:
                    await channel.close()
        return stats

    async def _sweep(
        self, limit: int, target: str | None, *, requeue: bool
    ) -> tuple[list[DeadLetterView], DeadLetterView | None]:
        """Read up to ``limit`` dead letters; put back all but ``target``, which is handled."""
        async with self._lock:
            connection = await self._connect()
            channel = await connection.channel(publisher_confirms=True)
            try:
                return await self._sweep_on(channel, limit, target, requeue=requeue)
            finally:
                await channel.close()

    async def _sweep_on(
        self, channel: AbstractChannel, limit: int, target: str | None, *, requeue: bool
    ) -> tuple[list[DeadLetterView], DeadLetterView | None]:
        queue = await channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)
        waiting = queue.declaration_result.message_count or 0
        dead_exchange = await channel.get_exchange(DEAD_LETTER_EXCHANGE)
        seen: list[DeadLetterView] = []
        for _ in range(min(waiting, MAXIMUM_DEAD_LETTERS)):
            incoming = await queue.get(no_ack=False, fail=False)
            if incoming is None:
                break
            letter = _letter_of(incoming)
            view = _view(letter)
            if target is not None and view.message_id == target:
                if requeue:
                    if not await self._queue_exists(letter.queue):
                        await _put_back(dead_exchange, incoming, letter)
                        raise RequeueTargetMissingError(letter.queue)
                    marker = uuid.uuid4().hex
                    # the broker routes this copy to letter.queue; its other copy, on the
                    # dead-letter queue itself, is dropped below
                    await dead_exchange.publish(
                        _message(letter.body, letter.requeue_headers(marker)),
                        letter.routing_key,
                    )
                    await incoming.ack()
                    await self._drop_copy(queue, dead_exchange, marker)
                else:
                    await incoming.ack()
                return seen, view
            await _put_back(dead_exchange, incoming, letter)
            if len(seen) < limit:
                seen.append(view)
        return seen, None

    async def _queue_exists(self, name: str) -> bool:
        if not name or name == DEAD_LETTER_QUEUE:
            return False
        return (await self.queue_stats([name]))[0].messages is not None

    async def _drop_copy(
        self, queue: AbstractQueue, dead_exchange: AbstractExchange, marker: str
    ) -> None:
        """Drop the requeued letter's copy on the dead-letter queue, keeping every other."""
        for _ in range(MAXIMUM_DEAD_LETTERS + 1):
            incoming = await queue.get(no_ack=False, fail=False)
            if incoming is None:
                break
            if (incoming.headers or {}).get(REQUEUE_MARKER_HEADER) == marker:
                await incoming.ack()
                return
            await _put_back(dead_exchange, incoming, _letter_of(incoming))
        # at least once: a copy left behind shows up again in the list, nothing is lost
        self._logger.warning("requeue_copy_not_found", marker=marker)

    async def dead_letters(self, limit: int) -> list[DeadLetterView]:
        """Return up to ``limit`` dead letters (each is put back as an identical copy)."""
        seen, _ = await self._sweep(limit, None, requeue=False)
        return seen

    async def requeue(self, message_id: str) -> DeadLetterView:
        """Send the dead letter back to the queue it died in and remove it from this one."""
        _, handled = await self._sweep(0, message_id, requeue=True)
        if handled is None:
            raise DeadLetterNotFoundError(message_id)
        return handled

    async def discard(self, message_id: str) -> DeadLetterView:
        """Acknowledge (drop) the dead letter."""
        _, handled = await self._sweep(0, message_id, requeue=False)
        if handled is None:
            raise DeadLetterNotFoundError(message_id)
        return handled


async def _put_back(
    dead_exchange: AbstractExchange, incoming: AbstractIncomingMessage, letter: DeadLetter
) -> None:
    """Re-publish an identical copy of a dead letter, then acknowledge the one read."""
    await dead_exchange.publish(_message(letter.body, letter.wire_headers()), letter.routing_key)
    await incoming.ack()


def _letter_of(incoming: AbstractIncomingMessage) -> DeadLetter:
    headers: dict[str, object] = dict(incoming.headers or {})
    return DeadLetter.from_wire(incoming.routing_key or "", headers, incoming.body)


def _message(body: bytes, headers: dict[str, Any]) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        headers=headers,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
