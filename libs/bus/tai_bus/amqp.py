"""The RabbitMQ transport over aio-pika: confirmed publishes, quorum queues, manual acks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import aio_pika
import aiormq
import tenacity
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from tai_bus.api import (
    DEFAULT_PREFETCH,
    ORIGINAL_EXCHANGE_HEADER,
    STANDARD_EXCHANGES,
    Binding,
    BusClosedError,
    DeadLetter,
    DeadLetterSubscription,
    Subscription,
    UnknownExchangeError,
    header_text,
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
from tai_bus.topology import (
    dead_letter_queue_arguments,
    quorum_queue_arguments,
    requeue_queue_arguments,
)
from tai_core.clock import Clock, SystemClock
from tai_events.base import Message
from tai_events.codec import encode, make_headers
from tai_events.headers import MessageHeaders
from tai_events.topics import (
    CONTROL_EXCHANGE,
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    EVENTS_EXCHANGE,
    REQUEUE_QUEUE,
    REQUEUE_ROUTING_KEY,
    exchange_for,
    routing_key_for,
)
from tai_telemetry import Telemetry, get_logger

CONTENT_TYPE = "application/json"
DELIVERY_COUNT_HEADER = "x-delivery-count"
"""Set by quorum queues on a redelivery: how many times the message was delivered before."""


_CONNECTION_ERRORS = (
    ConnectionError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
)
"""Failures of the connection, not of the message: worth a retry once reconnected."""


class AmqpBus:
    """A message bus on RabbitMQ: at-least-once, acked after the handler returns.

    One robust connection (reconnects and restores consumers by itself), one publishing
    channel with publisher confirms, and one consuming channel per subscription whose
    messages are handled one at a time, in order.
    """

    def __init__(
        self,
        url: str,
        producer: str,
        *,
        clock: Clock | None = None,
        telemetry: Telemetry | None = None,
        prefetch: int = DEFAULT_PREFETCH,
        connection_name: str | None = None,
        publish_timeout: float = 120.0,
        is_transient: TransientErrorClassifier | None = None,
    ) -> None:
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        self.producer = producer
        self._is_transient = is_transient
        self._url = url
        self._clock: Clock = clock or SystemClock()
        self._telemetry = telemetry
        self._tracer = resolve_tracer(telemetry)
        self._prefetch = prefetch
        self._connection_name = connection_name or producer
        self._publish_timeout = publish_timeout
        self._logger = get_logger("tai_bus.amqp", producer=producer)
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._consumers: dict[str, _Consumer] = {}
        self._started = False
        self._close_started = False
        self._closing = False

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
        """Connect, declare the exchanges and the dead-letter queue, start the consumers."""
        if self._closing:
            raise BusClosedError("the bus is closed")
        if self._started:
            return
        self._connection = await aio_pika.connect_robust(
            self._url, client_properties={"connection_name": self._connection_name}
        )
        channel = await self._connection.channel(publisher_confirms=True)
        try:
            await self._declare_topology(channel)
        except aiormq.exceptions.ChannelAccessRefused:
            # A least-privileged service user (trading-ai broker-setup) may not configure the
            # shared exchanges; they exist already, so look them up passively instead.
            channel = await self._connection.channel(publisher_confirms=True)
            await self._declare_topology(channel, passive=True)
            self._logger.info("bus_topology_passive", connection_name=self._connection_name)
        self._publish_channel = channel
        self._started = True
        for consumer in self._consumers.values():
            await consumer.start(self._connection)
        self._logger.info("bus_started", connection_name=self._connection_name)

    async def _declare_topology(
        self, channel: AbstractRobustChannel, *, passive: bool = False
    ) -> None:
        """Declare (or, passively, look up) the exchanges, the dead-letter and requeue queues."""
        for name in (EVENTS_EXCHANGE, CONTROL_EXCHANGE, DEAD_LETTER_EXCHANGE):
            self._exchanges[name] = await channel.declare_exchange(
                name, aio_pika.ExchangeType.TOPIC, durable=True, passive=passive
            )
        if passive:
            return
        dead_letter_queue = await channel.declare_queue(
            DEAD_LETTER_QUEUE, durable=True, arguments=dead_letter_queue_arguments()
        )
        await dead_letter_queue.bind(DEAD_LETTER_EXCHANGE, "#")
        requeue_queue = await channel.declare_queue(
            REQUEUE_QUEUE, durable=True, arguments=requeue_queue_arguments()
        )
        await requeue_queue.bind(DEAD_LETTER_EXCHANGE, REQUEUE_ROUTING_KEY)

    async def subscribe(self, subscription: Subscription) -> None:
        """Declare a durable quorum queue with its bindings and consume it (also after start)."""
        for binding in subscription.bindings:
            if binding.exchange not in STANDARD_EXCHANGES:
                raise UnknownExchangeError(binding.exchange)
        processor = MessageProcessor(
            queue=subscription.queue,
            handler=subscription.handler,
            delivery_limit=subscription.delivery_limit,
            telemetry=self._telemetry,
            is_transient=self._is_transient,
        )
        await self._add_consumer(
            _Consumer(
                bus=self,
                queue_name=subscription.queue,
                arguments=quorum_queue_arguments(subscription),
                bindings=tuple(subscription.bindings),
                prefetch=min(subscription.prefetch, self._prefetch),
                processor=processor,
            )
        )

    async def subscribe_dead_letters(self, subscription: DeadLetterSubscription) -> None:
        """Declare a queue on the dead-letter exchange and consume it raw."""
        processor = DeadLetterProcessor(
            queue=subscription.queue,
            handler=subscription.handler,
            delivery_limit=subscription.delivery_limit,
            telemetry=self._telemetry,
        )
        bindings = tuple(
            Binding(routing_key, exchange=DEAD_LETTER_EXCHANGE)
            for routing_key in subscription.routing_keys
        )
        await self._add_consumer(
            _Consumer(
                bus=self,
                queue_name=subscription.queue,
                arguments=dead_letter_queue_arguments(),
                bindings=bindings,
                prefetch=min(subscription.prefetch, self._prefetch),
                processor=processor,
            )
        )

    async def _add_consumer(self, consumer: _Consumer) -> None:
        if self._closing:
            raise BusClosedError("the bus is closed")
        if consumer.queue_name in self._consumers:
            raise ValueError(f"queue {consumer.queue_name!r} already has a consumer on this bus")
        self._consumers[consumer.queue_name] = consumer
        if self._started:
            if self._connection is None:
                raise BusClosedError("the bus is started but has no connection")
            await consumer.start(self._connection)

    async def publish(
        self,
        message: Message,
        *,
        cause: MessageHeaders | None = None,
        headers: MessageHeaders | None = None,
    ) -> MessageHeaders:
        """Publish and wait for the broker's confirm; return the headers sent."""
        exchange = self._exchange(exchange_for(message))
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
        amqp_message = aio_pika.Message(
            encode(message),
            headers=dict(headers.to_wire()),
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=headers.message_id,
            type=headers.type,
            correlation_id=headers.correlation_id,
            app_id=self.producer,
            timestamp=headers.occurred_at,
        )
        await self._publish_through_outages(
            exchange_for(message), amqp_message, routing_key_for(message)
        )
        if self._telemetry is not None:
            self._telemetry.bus.published.labels(exchange.name, headers.type).inc()
        return headers

    async def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: dict[str, object],
    ) -> None:
        """Publish bytes as they are and wait for the broker's confirm."""
        await self._publish_through_outages(
            exchange, _raw_message(body, headers, app_id=self.producer), routing_key
        )
        if self._telemetry is not None:
            self._telemetry.bus.published.labels(exchange, message_type_label(headers)).inc()

    async def dead_letter(self, dead_letter: DeadLetter) -> None:
        """Publish a dead letter to the dead-letter exchange and wait for the confirm."""
        target = self._exchange(DEAD_LETTER_EXCHANGE)
        message = _raw_message(dead_letter.body, dead_letter.wire_headers(), app_id=self.producer)
        await target.publish(message, dead_letter.routing_key, mandatory=False)

    async def _publish_through_outages(
        self, exchange: str, message: aio_pika.Message, routing_key: str
    ) -> None:
        """Publish and await the confirm, riding out a broker restart or a lost connection.

        The robust connection reconnects by itself; a publish that failed meanwhile is sent
        again once it is back (at-least-once: consumers de-duplicate on message_id). A
        negative confirm (the broker refused the message) is not retried.
        """
        async for attempt in tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(_CONNECTION_ERRORS),
            wait=tenacity.wait_exponential(multiplier=0.05, max=2.0),
            stop=tenacity.stop_after_delay(self._publish_timeout),
            before_sleep=self._log_publish_retry,
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1 and self._connection is not None:
                    await asyncio.wait_for(
                        self._connection.connected.wait(), timeout=self._publish_timeout
                    )
                await self._exchange(exchange).publish(message, routing_key, mandatory=False)

    def _log_publish_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        self._logger.warning(
            "publish_retrying_after_connection_error",
            attempt=state.attempt_number,
            error=f"{type(error).__name__}: {error}",
        )

    def _exchange(self, name: str) -> AbstractExchange:
        if self._closing or not self._started:
            raise BusClosedError("the bus is not started or already closed")
        exchange = self._exchanges.get(name)
        if exchange is None:
            raise UnknownExchangeError(name)
        return exchange

    async def close(self) -> None:
        """Cancel consumers, let in-flight handlers finish, then close channels and connection."""
        if self._close_started:
            return
        self._close_started = True
        for consumer in self._consumers.values():
            await consumer.stop()
        # Only now: the handlers that just finished may still have published.
        self._closing = True
        if self._publish_channel is not None and not self._publish_channel.is_closed:
            await self._publish_channel.close()
        if self._connection is not None:
            await self._connection.close()
        self._logger.info("bus_closed")


def _raw_message(body: bytes, headers: Mapping[str, object], *, app_id: str) -> aio_pika.Message:
    def text(key: str) -> str | None:
        value = headers.get(key)
        return value if isinstance(value, str) else None

    occurred_at = headers.get("occurred_at")
    timestamp: datetime | None = None
    if isinstance(occurred_at, str):
        try:
            timestamp = datetime.fromisoformat(occurred_at)
        except ValueError:
            timestamp = None
    return aio_pika.Message(
        bytes(body),
        headers=dict(headers),  # type: ignore[arg-type]
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=text("message_id"),
        type=text("type"),
        correlation_id=text("correlation_id"),
        app_id=app_id,
        timestamp=timestamp,
    )


ACK_BATCH = 32
"""Most handled messages one acknowledgement frame covers while more wait in the buffer."""


def _delivery_count(headers: Mapping[str, object]) -> int:
    previous = headers.get(DELIVERY_COUNT_HEADER, 0)
    return (previous if isinstance(previous, int) else 0) + 1


class _Consumer:
    """One queue consumed on its own channel; messages handled one at a time, in order."""

    def __init__(
        self,
        *,
        bus: AmqpBus,
        queue_name: str,
        arguments: dict[str, object],
        bindings: tuple[Binding, ...],
        prefetch: int,
        processor: Processor,
    ) -> None:
        self.queue_name = queue_name
        self._bus = bus
        self._arguments = arguments
        self._bindings = bindings
        self._prefetch = prefetch
        self._processor = processor
        self._logger = get_logger("tai_bus.amqp", queue=queue_name)
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        # aio-pika runs each delivery callback as its own task; the callback only appends
        # here (tasks start in delivery order) and one worker handles the buffer in order.
        self._buffer: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._stopping = False
        # The newest handled message not yet acknowledged, and how many are behind it: acks
        # go out together (multiple=True) while more messages wait, each on its own frame
        # otherwise. A crash redelivers at most ACK_BATCH handled messages; handlers are
        # idempotent, as they must be for any redelivery.
        self._unacked: AbstractIncomingMessage | None = None
        self._unacked_count = 0

    async def start(self, connection: AbstractRobustConnection) -> None:
        self._channel = await connection.channel(publisher_confirms=False)
        await self._channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await self._channel.declare_queue(
            self.queue_name,
            durable=True,
            arguments=self._arguments,
        )
        for binding in self._bindings:
            await self._queue.bind(binding.exchange, binding.routing_key)
        self._worker = asyncio.create_task(self._work(), name=f"consume {self.queue_name}")
        self._consumer_tag = await self._queue.consume(self._on_message, no_ack=False)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._buffer.put_nowait(message)

    async def _work(self) -> None:
        while not self._stopping:
            message = await self._buffer.get()
            if message is None or self._stopping:
                break
            try:
                await self._handle(message)
            except Exception as error:
                # A bug here must not stop the queue: leave the message to the broker.
                self._logger.exception("delivery_crashed", error=repr(error))
                with contextlib.suppress(Exception):
                    await message.nack(requeue=True)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        headers: dict[str, object] = dict(message.headers or {})
        delivery = Delivery(
            queue=self.queue_name,
            exchange=message.exchange or "",
            routing_key=message.routing_key or "",
            headers=headers,
            body=message.body,
            redelivered=bool(message.redelivered),
            delivery_count=_delivery_count(headers),
        )
        verdict = await self._processor.process(delivery)
        try:
            if verdict.outcome is Outcome.ACK:
                self._unacked = message
                self._unacked_count += 1
                if self._unacked_count >= ACK_BATCH or self._buffer.empty():
                    await self._flush_acks()
                return
            # Settle the handled ones first: a multiple ack must never cover this message.
            await self._flush_acks()
            if verdict.outcome is Outcome.RETRY:
                await message.nack(requeue=True)
            else:
                await self._dead_letter(message, delivery, verdict.reason)
        except Exception as error:
            # The channel went away (reconnect): the broker redelivers the unacked messages.
            self._unacked, self._unacked_count = None, 0
            self._logger.warning("settle_failed", outcome=verdict.outcome.value, error=repr(error))

    async def _flush_acks(self) -> None:
        """Acknowledge every handled message up to the newest one, in one frame."""
        newest, self._unacked, self._unacked_count = self._unacked, None, 0
        if newest is not None:
            await newest.ack(multiple=True)

    async def _dead_letter(
        self, message: AbstractIncomingMessage, delivery: Delivery, reason: str
    ) -> None:
        dead_letter = DeadLetter(
            queue=self.queue_name,
            # a requeued message arrives through the default exchange: keep its first one
            exchange=delivery.exchange
            or header_text(delivery.headers.get(ORIGINAL_EXCHANGE_HEADER)),
            routing_key=delivery.routing_key,
            headers=_without_delivery_count(delivery.headers),
            body=delivery.body,
            reason=reason,
        )
        try:
            await self._bus.dead_letter(dead_letter)
        except Exception as error:
            # Not confirmed: keep the message rather than lose it; it comes back later.
            self._logger.error("dead_letter_publish_failed", reason=reason, error=repr(error))
            await message.nack(requeue=True)
            return
        await message.ack()

    async def stop(self) -> None:
        self._stopping = True
        if self._queue is not None and self._consumer_tag is not None:
            try:
                await self._queue.cancel(self._consumer_tag)
            except Exception as error:
                self._logger.warning("cancel_failed", error=repr(error))
        self._buffer.put_nowait(None)
        if self._worker is not None:
            await self._worker
        try:
            await self._flush_acks()
        except Exception as error:  # the channel is gone: the broker redelivers them
            self._logger.warning("final_ack_failed", error=repr(error))
        if self._channel is not None and not self._channel.is_closed:
            # Closing returns the prefetched, unhandled messages to the queue.
            await self._channel.close()


def _without_delivery_count(headers: Mapping[str, object]) -> dict[str, Any]:
    return {key: value for key, value in headers.items() if key != DELIVERY_COUNT_HEADER}
