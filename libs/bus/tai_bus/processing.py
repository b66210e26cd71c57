"""What happens to one delivery, independent of the transport that carried it.

Both transports hand each delivery to a processor and act on its verdict: acknowledge,
requeue for redelivery, or dead-letter with a reason. Keeping the decision here is what
gives the in-memory bus and the RabbitMQ bus the same semantics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, Protocol

import tenacity
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tai_bus.api import DeadLetter, DeadLetterHandler, Handler, PermanentHandlerError
from tai_core.outage import DEFAULT_OUTAGE_PATIENCE_SECONDS, waiting_out_outages
from tai_events.base import Message
from tai_events.codec import Envelope, MessageDecodeError, decode_body, decode_headers
from tai_events.headers import MessageHeaders
from tai_events.topics import routing_key_for
from tai_telemetry import Telemetry, extract_context, get_logger, inject_traceparent

MAX_REASON_LENGTH = 1000
"""Dead-letter reasons are cut to this length (they travel in an AMQP header)."""
TransientErrorClassifier = Callable[[BaseException], bool]
"""Tells whether a handler's error means a dependency is down (retry in place)."""


class Outcome(Enum):
    """What the transport does with a delivery once it was processed."""

    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


class DeadLetterCategory(StrEnum):
    """Why a message was dead-lettered, coarse enough to be a metric label."""

    UNDECODABLE = "undecodable"
    PERMANENT_ERROR = "permanent_error"
    DELIVERY_LIMIT = "delivery_limit"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of processing one delivery, with the reason when it is dead-lettered."""

    outcome: Outcome
    reason: str = ""

    @classmethod
    def ack(cls) -> Verdict:
        """Return the verdict of a handled message."""
        return cls(Outcome.ACK)

    @classmethod
    def retry(cls) -> Verdict:
        """Return the verdict of a message to deliver again."""
        return cls(Outcome.RETRY)

    @classmethod
    def dead_letter(cls, reason: str) -> Verdict:
        """Return the verdict of a message to take out of circulation."""
        return cls(Outcome.DEAD_LETTER, reason[:MAX_REASON_LENGTH])


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of a message to a queue, as the transport received it."""

    queue: str
    exchange: str
    routing_key: str
    headers: Mapping[str, object]
    body: bytes
    redelivered: bool
    delivery_count: int
    """Deliveries of this message to this queue so far, this one included."""


class Processor(Protocol):
    """Turns a delivery into a verdict; never raises for a bad message or a failing handler."""

    async def process(self, delivery: Delivery) -> Verdict:
        """Process one delivery."""
        ...


def resolve_tracer(telemetry: Telemetry | None) -> trace.Tracer:
    """Return the service's tracer, or the globally configured one without telemetry."""
    return telemetry.tracer() if telemetry is not None else trace.get_tracer("tai.bus")


def _trace_carrier(headers: Mapping[str, object]) -> dict[str, object]:
    carrier: dict[str, object] = {}
    for key in ("traceparent", "tracestate"):
        value = headers.get(key)
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("utf-8", errors="replace")
        if isinstance(value, str):
            carrier[key] = value
    return carrier


def publish_traceparent(
    tracer: trace.Tracer, routing_key: str, cause: MessageHeaders | None
) -> str | None:
    """Return the traceparent of a message about to be published.

    Inside a span the message continues that trace; with a cause it continues the cause's
    (``make_headers`` copies it). A message that starts a chain (a bar from ingestion, a
    command from an operator) opens a root producer span, so every message carries a
    trace that its consumers continue end to end.
    """
    traceparent = inject_traceparent()
    if traceparent is not None or (cause is not None and cause.traceparent):
        return traceparent
    with tracer.start_as_current_span(f"{routing_key} publish", kind=SpanKind.PRODUCER):
        return inject_traceparent()


def message_type_label(headers: Mapping[str, object]) -> str:
    value = headers.get("type")
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", errors="replace")
    # The label comes from the wire: keep hostile input from exploding the series count.
    if isinstance(value, str) and value.isidentifier() and len(value) <= 64:
        return value
    return "unknown"


def describe_error(error: BaseException) -> str:
    """Return ``Type: message`` for a dead-letter reason."""
    return f"{type(error).__name__}: {error}"


class _SpanningProcessor:
    def __init__(self, queue: str, telemetry: Telemetry | None) -> None:
        self._queue = queue
        self._telemetry = telemetry
        self._tracer = resolve_tracer(telemetry)
        self._logger = get_logger("tai_bus", queue=queue)

    def _start_span(self, delivery: Delivery) -> Any:
        return self._tracer.start_as_current_span(
            f"{self._queue} process",
            context=extract_context(_trace_carrier(delivery.headers)),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.destination.name": delivery.exchange,
                "messaging.rabbitmq.destination.routing_key": delivery.routing_key,
                "messaging.consumer.group.name": self._queue,
                "messaging.message.body.size": len(delivery.body),
                "messaging.rabbitmq.message.delivery_count": delivery.delivery_count,
            },
            record_exception=False,
            set_status_on_exception=False,
        )


class MessageProcessor(_SpanningProcessor):
    """Decode a delivery, run the subscription's handler in a consumer span, judge the result."""

    def __init__(
        self,
        *,
        queue: str,
        handler: Handler,
        delivery_limit: int,
        telemetry: Telemetry | None,
        is_transient: TransientErrorClassifier | None = None,
        outage_patience_seconds: float = DEFAULT_OUTAGE_PATIENCE_SECONDS,
    ) -> None:
        super().__init__(queue, telemetry)
        self._handler = handler
        self._delivery_limit = delivery_limit
        self._is_transient = is_transient
        self._outage_patience_seconds = outage_patience_seconds

    async def _run_handler(self, envelope: Envelope[Message]) -> None:
        """Run the handler; while a dependency is down, wait and run it again in place.

        A database outage is not the message's fault: counting it against the delivery limit
        would dead-letter every message that arrived during the outage. Holding the delivery
        also keeps the queue in order. Handlers are idempotent (inbox claim, one transaction).
        """
        if self._is_transient is None:
            await self._handler(envelope)
            return
        is_transient = self._is_transient

        def log_outage(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            self._logger.warning(
                "dependency_unavailable",
                attempt=state.attempt_number,
                error=describe_error(error) if error is not None else "",
            )

        async for attempt in waiting_out_outages(
            is_transient,
            patience_seconds=self._outage_patience_seconds,
            before_sleep=log_outage,
        ):
            with attempt:
                await self._handler(envelope)

    async def process(self, delivery: Delivery) -> Verdict:
        """Process one delivery; return ACK, RETRY or DEAD_LETTER with a reason."""
        type_label = message_type_label(delivery.headers)
        if self._telemetry is not None and delivery.redelivered:
            self._telemetry.bus.redelivered.labels(self._queue).inc()
        with self._start_span(delivery) as span:
            try:
                headers = decode_headers(delivery.headers)
                message: Message = decode_body(headers, delivery.body)
            except MessageDecodeError as error:
                span.set_status(Status(StatusCode.ERROR, error.reason))
                return self._dead_letter(
                    delivery, error.reason, DeadLetterCategory.UNDECODABLE, type_label
                )
            expected_key = routing_key_for(message)
            if expected_key != delivery.routing_key:
                # A valid message under another key is misrouted or forged: a consumer bound
                # to market.bar.* must never act on (or silently drop) an approval.
                reason = (
                    f"routing key {delivery.routing_key!r} does not match the "
                    f"{headers.type}'s {expected_key!r}"
                )
                span.set_status(Status(StatusCode.ERROR, reason))
                return self._dead_letter(
                    delivery, reason, DeadLetterCategory.UNDECODABLE, type_label
                )
            span.set_attribute("messaging.message.id", headers.message_id)
            span.set_attribute("messaging.message.conversation_id", headers.correlation_id)
            envelope = Envelope(
                headers=headers,
                message=message,
                routing_key=delivery.routing_key,
                redelivered=delivery.redelivered,
            )
            if self._telemetry is not None:
                lag = (datetime.now(UTC) - headers.occurred_at).total_seconds()
                self._telemetry.bus.lag.labels(self._queue).observe(max(0.0, lag))
            started = time.perf_counter()
            try:
                await self._run_handler(envelope)
            except PermanentHandlerError as error:
                self._observe_latency(type_label, started)
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, describe_error(error)))
                reason = str(error) or type(error).__name__
                return self._dead_letter(
                    delivery, reason, DeadLetterCategory.PERMANENT_ERROR, type_label
                )
            except Exception as error:
                self._observe_latency(type_label, started)
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, describe_error(error)))
                return self._failed(delivery, error, type_label)
            self._observe_latency(type_label, started)
            if self._telemetry is not None:
                self._telemetry.bus.consumed.labels(self._queue, type_label).inc()
            return Verdict.ack()

    def _failed(self, delivery: Delivery, error: Exception, type_label: str) -> Verdict:
        if self._telemetry is not None:
            self._telemetry.bus.failed.labels(self._queue, type_label).inc()
        if delivery.delivery_count >= self._delivery_limit:
            reason = f"delivery limit {self._delivery_limit} reached: {describe_error(error)}"
            return self._dead_letter(
                delivery, reason, DeadLetterCategory.DELIVERY_LIMIT, type_label
            )
        self._logger.warning(
            "handler_failed",
            routing_key=delivery.routing_key,
            type=type_label,
            delivery_count=delivery.delivery_count,
            delivery_limit=self._delivery_limit,
            error=describe_error(error),
        )
        return Verdict.retry()

    def _dead_letter(
        self,
        delivery: Delivery,
        reason: str,
        category: DeadLetterCategory,
        type_label: str,
    ) -> Verdict:
        if self._telemetry is not None:
            self._telemetry.bus.dead_lettered.labels(self._queue, category.value).inc()
        self._logger.error(
            "message_dead_lettered",
            routing_key=delivery.routing_key,
            type=type_label,
            category=category.value,
            reason=reason,
        )
        return Verdict.dead_letter(reason)

    def _observe_latency(self, type_label: str, started: float) -> None:
        if self._telemetry is not None:
            self._telemetry.bus.handler_latency.labels(self._queue, type_label).observe(
                time.perf_counter() - started
            )


class DeadLetterProcessor(_SpanningProcessor):
    """Hand a dead letter, undecoded, to its handler; give up (logged) past the limit."""

    def __init__(
        self,
        *,
        queue: str,
        handler: DeadLetterHandler,
        delivery_limit: int,
        telemetry: Telemetry | None,
    ) -> None:
        super().__init__(queue, telemetry)
        self._handler = handler
        self._delivery_limit = delivery_limit

    async def process(self, delivery: Delivery) -> Verdict:
        """Process one dead letter; return ACK or RETRY (never DEAD_LETTER: it is one)."""
        dead_letter = DeadLetter.from_wire(delivery.routing_key, delivery.headers, delivery.body)
        type_label = message_type_label(delivery.headers)
        with self._start_span(delivery) as span:
            started = time.perf_counter()
            try:
                await self._handler(dead_letter)
            except Exception as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, describe_error(error)))
                return self._failed(delivery, dead_letter, error, type_label, started)
            self._observe(type_label, started, succeeded=True)
            return Verdict.ack()

    def _failed(
        self,
        delivery: Delivery,
        dead_letter: DeadLetter,
        error: Exception,
        type_label: str,
        started: float,
    ) -> Verdict:
        self._observe(type_label, started, succeeded=False)
        gives_up = isinstance(error, PermanentHandlerError) or (
            delivery.delivery_count >= self._delivery_limit
        )
        if not gives_up:
            self._logger.warning(
                "dead_letter_handler_failed",
                delivery_count=delivery.delivery_count,
                error=describe_error(error),
            )
            return Verdict.retry()
        # There is nowhere further to send it: record everything in the log, then ack.
        self._logger.error(
            "dead_letter_abandoned",
            error=describe_error(error),
            dead_letter_queue=dead_letter.queue,
            exchange=dead_letter.exchange,
            routing_key=dead_letter.routing_key,
            reason=dead_letter.reason,
            headers={key: str(value) for key, value in dead_letter.headers.items()},
            body=dead_letter.body.decode("utf-8", errors="replace")[:MAX_REASON_LENGTH],
        )
        return Verdict.ack()

    def _observe(self, type_label: str, started: float, *, succeeded: bool) -> None:
        if self._telemetry is None:
            return
        metrics = self._telemetry.bus
        metrics.handler_latency.labels(self._queue, type_label).observe(
            time.perf_counter() - started
        )
        counter = metrics.consumed if succeeded else metrics.failed
        counter.labels(self._queue, type_label).inc()
