"""The in-memory transport: RabbitMQ's topic routing and delivery rules inside one process.

Used by unit tests, backtests and the embedded mode. Messages are really encoded to bytes and
decoded on delivery, so a malformed message fails here exactly as it would on RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from tai_bus.api import (
    STANDARD_EXCHANGES,
    Binding,
    BusClosedError,
    DeadLetter,
    DeadLetterSubscription,
    Subscription,
    UnknownExchangeError,
)
from tai_bus.processing import (
    DeadLetterProcessor,
    Delivery,
    MessageProcessor,
    Outcome,
    Processor,
    TransientErrorClassifier,
    message_type_label,
    publish_traceparent,
    resolve_tracer,
)
from tai_bus.topology import topic_matches
from tai_core.clock import Clock, SystemClock
from tai_events.base import Message
from tai_events.codec import encode, make_headers
from tai_events.headers import MessageHeaders
from tai_events.topics import DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, exchange_for, routing_key_for
from tai_telemetry import Telemetry, get_logger

_INSIDE_HANDLER: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "tai_bus_inside_handler", default=False
)


@dataclass(eq=False, slots=True)
class _Pending:
    """A message waiting in one queue (each queue holds its own copy of the count)."""

    sequence: int
    exchange: str
    routing_key: str
    headers: dict[str, object]
    body: bytes
    delivery_count: int = 0


@dataclass(eq=False)
class _Queue:
    name: str
    bindings: list[Binding]
    pending: deque[_Pending] = field(default_factory=deque)
    processor: Processor | None = None
    busy: bool = False
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def matches(self, exchange: str, routing_key: str) -> bool:
        return any(
            binding.exchange == exchange and topic_matches(binding.routing_key, routing_key)
            for binding in self.bindings
        )

    @property
    def idle(self) -> bool:
        return self.processor is None or (not self.pending and not self.busy)


class InMemoryBus:
    """A message bus inside one process, with the semantics of the RabbitMQ transport.

    In the default mode each consumed queue has one task handling its messages in order. In
    ``deterministic`` mode nothing runs in the background: ``drain()`` delivers every
    message, in global publish order, until all consumed queues are empty.
    """

    def __init__(
        self,
        producer: str,
        *,
        clock: Clock | None = None,
        telemetry: Telemetry | None = None,
        deterministic: bool = False,
        is_transient: TransientErrorClassifier | None = None,
    ) -> None:
        self.producer = producer
        self._is_transient = is_transient
        self.deterministic = deterministic
        self.dead_letters: list[DeadLetter] = []
        """Every message this bus dead-lettered, oldest first."""
        self._clock: Clock = clock or SystemClock()
        self._telemetry = telemetry
        self._tracer = resolve_tracer(telemetry)
        self._logger = get_logger("tai_bus.memory", producer=producer)
        self._sequence = itertools.count()
        # The shared dead-letter queue exists from the start, like on the broker: dead
        # letters wait in it until someone consumes it.
        self._queues: dict[str, _Queue] = {
            DEAD_LETTER_QUEUE: _Queue(
                DEAD_LETTER_QUEUE, [Binding("#", exchange=DEAD_LETTER_EXCHANGE)]
            )
        }
        self._started = False
        self._closing = False
        self._settled = asyncio.Event()
        self._settled.set()
        self._drain_lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start consuming every registered subscription."""
        if self._closing:
            raise BusClosedError("the bus is closed")
        if self._started:
            return
        self._started = True
        for queue in self._queues.values():
            self._start_consumer(queue)

    async def subscribe(self, subscription: Subscription) -> None:
        """Declare a queue with its bindings and consume it (also after start)."""
        if subscription.queue == DEAD_LETTER_QUEUE:
            raise ValueError("consume the dead-letter queue with subscribe_dead_letters()")
        for binding in subscription.bindings:
            _check_exchange(binding.exchange)
        processor = MessageProcessor(
            queue=subscription.queue,
            handler=subscription.handler,
            delivery_limit=subscription.delivery_limit,
            telemetry=self._telemetry,
            is_transient=self._is_transient,
        )
        self._attach(subscription.queue, list(subscription.bindings), processor)

    async def subscribe_dead_letters(self, subscription: DeadLetterSubscription) -> None:
        """Declare a queue on the dead-letter exchange and consume it raw."""
        bindings = [
            Binding(routing_key, exchange=DEAD_LETTER_EXCHANGE)
            for routing_key in subscription.routing_keys
        ]
        processor = DeadLetterProcessor(
            queue=subscription.queue,
            handler=subscription.handler,
            delivery_limit=subscription.delivery_limit,
            telemetry=self._telemetry,
        )
        self._attach(subscription.queue, bindings, processor)

    def _attach(self, name: str, bindings: list[Binding], processor: Processor) -> None:
        if self._closing:
            raise BusClosedError("the bus is closed")
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue(name, [])
        if queue.processor is not None:
            raise ValueError(f"queue {name!r} already has a consumer on this bus")
        queue.bindings.extend(binding for binding in bindings if binding not in queue.bindings)
        queue.processor = processor
        if queue.pending:
            self._settled.clear()
        if self._started:
            self._start_consumer(queue)

    def _start_consumer(self, queue: _Queue) -> None:
        if self.deterministic or queue.processor is None or queue.task is not None:
            return
        queue.task = asyncio.create_task(self._consume(queue), name=f"consume {queue.name}")

    async def publish(
        self,
        message: Message,
        *,
        cause: MessageHeaders | None = None,
        headers: MessageHeaders | None = None,
    ) -> MessageHeaders:
        """Route a message to every bound queue; return the headers sent."""
        self._check_open()
        if headers is None:
            headers = make_headers(
                message,
                producer=self.producer,
                occurred_at=self._clock.now(),
                cause=cause,
                traceparent=publish_traceparent(self._tracer, routing_key_for(message), cause),
            )
        elif headers.type != message.message_type():
            raise ValueError(f"headers of a {headers.type} given for a {message.message_type()}")
        exchange = exchange_for(message)
        self._route(exchange, routing_key_for(message), dict(headers.to_wire()), encode(message))
        if self._telemetry is not None:
            self._telemetry.bus.published.labels(exchange, headers.type).inc()
        return headers

    async def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: dict[str, object],
    ) -> None:
        """Route bytes as they are to every bound queue."""
        self._check_open()
        _check_exchange(exchange)
        self._route(exchange, routing_key, dict(headers), bytes(body))
        if self._telemetry is not None:
            self._telemetry.bus.published.labels(exchange, message_type_label(headers)).inc()

    def requeue(self, letter: DeadLetter) -> None:
        """Put a dead letter back on the queue it died in, as it was first published.

        Raise LookupError when that queue is unknown (or is the dead-letter queue itself).
        """
        self._check_open()
        queue = self._queues.get(letter.queue)
        if queue is None or letter.queue == DEAD_LETTER_QUEUE:
            raise LookupError(f"no queue {letter.queue!r} to requeue into")
        queue.pending.append(
            _Pending(
                next(self._sequence),
                letter.exchange,
                letter.routing_key,
                letter.original_headers(),
                letter.body,
            )
        )
        if queue.processor is not None:
            self._settled.clear()
            queue.wakeup.set()

    def _check_open(self) -> None:
        if not self._started:
            raise BusClosedError("start() the bus before publishing")
        if self._closing:
            raise BusClosedError("the bus is closed")

    def _route(
        self, exchange: str, routing_key: str, headers: dict[str, object], body: bytes
    ) -> None:
        sequence = next(self._sequence)
        for queue in self._queues.values():
            if not queue.matches(exchange, routing_key):
                continue
            queue.pending.append(_Pending(sequence, exchange, routing_key, dict(headers), body))
            if queue.processor is not None:
                self._settled.clear()
                queue.wakeup.set()

    async def drain(self) -> None:
        """Deliver until every consumed queue is empty and idle.

        Deterministic mode delivers here, in global publish order, including messages the
        handlers publish meanwhile; otherwise this waits for the consumer tasks.
        """
        if _INSIDE_HANDLER.get():
            raise RuntimeError("drain() cannot be awaited from a message handler")
        if not self._started:
            raise BusClosedError("start() the bus before draining")
        if not self.deterministic:
            await self._settled.wait()
            return
        async with self._drain_lock:
            while not self._closing:
                queue = self._next_queue()
                if queue is None:
                    return
                await self._deliver(queue, queue.pending.popleft())

    def _next_queue(self) -> _Queue | None:
        ready = [
            queue
            for queue in self._queues.values()
            if queue.processor is not None and queue.pending
        ]
        return min(ready, key=lambda queue: queue.pending[0].sequence, default=None)

    async def _consume(self, queue: _Queue) -> None:
        while not self._closing:
            if not queue.pending:
                queue.wakeup.clear()
                self._update_settled()
                await queue.wakeup.wait()
                continue
            await self._deliver(queue, queue.pending.popleft())
        self._update_settled()

    def _update_settled(self) -> None:
        if all(queue.idle for queue in self._queues.values()):
            self._settled.set()

    async def _deliver(self, queue: _Queue, pending: _Pending) -> None:
        if queue.processor is None:
            raise RuntimeError(f"queue {queue.name!r} has a delivery but no consumer")
        pending.delivery_count += 1
        delivery = Delivery(
            queue=queue.name,
            exchange=pending.exchange,
            routing_key=pending.routing_key,
            headers=pending.headers,
            body=pending.body,
            redelivered=pending.delivery_count > 1,
            delivery_count=pending.delivery_count,
        )
        queue.busy = True
        token = _INSIDE_HANDLER.set(True)
        try:
            verdict = await queue.processor.process(delivery)
        except BaseException:
            # Cancelled mid-handler: the message was not acknowledged, so it stays queued.
            queue.pending.appendleft(pending)
            raise
        finally:
            _INSIDE_HANDLER.reset(token)
            queue.busy = False
        if verdict.outcome is Outcome.RETRY:
            # A requeued message goes back to the head of its queue, as on a quorum queue.
            queue.pending.appendleft(pending)
        elif verdict.outcome is Outcome.DEAD_LETTER:
            self._dead_letter(queue.name, pending, verdict.reason)

    def _dead_letter(self, queue_name: str, pending: _Pending, reason: str) -> None:
        dead_letter = DeadLetter(
            queue=queue_name,
            exchange=pending.exchange,
            routing_key=pending.routing_key,
            headers=pending.headers,
            body=pending.body,
            reason=reason,
        )
        self.dead_letters.append(dead_letter)
        self._route(
            DEAD_LETTER_EXCHANGE, pending.routing_key, dead_letter.wire_headers(), pending.body
        )

    async def close(self) -> None:
        """Stop consuming and let in-flight handlers finish; queued messages stay queued."""
        if self._closing:
            return
        self._closing = True
        self._settled.set()
        current = asyncio.current_task()
        tasks = [queue.task for queue in self._queues.values() if queue.task is not None]
        for queue in self._queues.values():
            queue.wakeup.set()
        await asyncio.gather(*(task for task in tasks if task is not current))
        if self.deterministic and not _INSIDE_HANDLER.get():
            # Wait for a drain in progress to finish its current delivery.
            async with self._drain_lock:
                pass
        self._logger.debug("bus_closed")


def _check_exchange(exchange: str) -> None:
    if exchange not in STANDARD_EXCHANGES:
        raise UnknownExchangeError(exchange)
