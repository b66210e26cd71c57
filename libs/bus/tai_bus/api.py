"""The bus interface every service codes against; transports implement it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.headers import MessageHeaders
from tai_events.topics import (
    CONTROL_EXCHANGE,
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    EVENTS_EXCHANGE,
    REQUEUE_ROUTING_KEY,
)

Handler = Callable[[Envelope[Message]], Awaitable[None]]
"""Handles one decoded message. Returning acks it; raising asks for redelivery."""

DEFAULT_DELIVERY_LIMIT = 5
"""Deliveries of one message before it is dead-lettered as poison."""
DEFAULT_PREFETCH = 64

ORIGINAL_EXCHANGE_HEADER = "x-tai-original-exchange"
"""Header naming the exchange a dead-lettered message was first published on."""

STANDARD_EXCHANGES = frozenset({EVENTS_EXCHANGE, CONTROL_EXCHANGE, DEAD_LETTER_EXCHANGE})
"""The exchanges every transport declares; publishing or binding elsewhere is refused."""

REQUEUE_MARKER_HEADER = "x-tai-requeue-id"
"""Names one requeue: its copy on the dead-letter queue is found and dropped by it."""

_DEAD_LETTER_ANNOTATIONS = frozenset(
    {DEAD_LETTER_REASON_HEADER, DEAD_LETTER_QUEUE_HEADER, ORIGINAL_EXCHANGE_HEADER}
)
_ROUTING_HEADERS = frozenset({"CC", "BCC", REQUEUE_MARKER_HEADER})
"""Headers that add routes to a publish: a dead letter must not carry them on."""
_BROKER_ANNOTATIONS = frozenset({"x-death", "x-delivery-count"})
_BROKER_ANNOTATION_PREFIXES = ("x-first-death-", "x-last-death-")


@dataclass(frozen=True, slots=True)
class Binding:
    """Route messages matching ``routing_key`` (topic pattern) on ``exchange`` to a queue."""

    routing_key: str
    exchange: str = EVENTS_EXCHANGE


@dataclass(frozen=True, slots=True)
class Subscription:
    """A durable queue, what it is bound to, and the handler that consumes it.

    Messages of one queue are handled one at a time, in order (per-symbol ordering holds
    because a symbol's messages share a queue).
    """

    queue: str
    bindings: Sequence[Binding]
    handler: Handler
    prefetch: int = DEFAULT_PREFETCH
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    single_active_consumer: bool = False
    consumer_name: str = field(default="")

    def __post_init__(self) -> None:
        _check_limits(self.queue, self.prefetch, self.delivery_limit)
        if not self.bindings:
            raise ValueError(f"subscription to {self.queue!r} has no bindings")


def _check_limits(queue: str, prefetch: int, delivery_limit: int) -> None:
    if not queue:
        raise ValueError("queue name must not be empty")
    if prefetch < 1:
        raise ValueError(f"prefetch of {queue!r} must be at least 1, got {prefetch}")
    if delivery_limit < 1:
        raise ValueError(f"delivery_limit of {queue!r} must be at least 1, got {delivery_limit}")


class PermanentHandlerError(Exception):
    """Raise from a handler for a message that can never succeed: dead-letter it now."""


class UnknownExchangeError(ValueError):
    """A publish or binding named an exchange the bus does not declare."""

    def __init__(self, exchange: str) -> None:
        super().__init__(
            f"unknown exchange {exchange!r}; expected one of {sorted(STANDARD_EXCHANGES)}"
        )
        self.exchange = exchange


class BusClosedError(RuntimeError):
    """The bus is not started yet, or already closed."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message taken out of circulation, as it was on the wire, with the reason why.

    ``queue`` is the queue that gave up on it and ``exchange`` the exchange it was first
    published on; ``headers`` are its original wire headers (the dead-letter annotations
    are lifted into ``reason``, ``queue`` and ``exchange``).
    """

    queue: str
    exchange: str
    routing_key: str
    headers: Mapping[str, object]
    body: bytes
    reason: str

    def __post_init__(self) -> None:
        # A frozen dataclass holding a plain dict could still be mutated through it.
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))

    @classmethod
    def from_wire(cls, routing_key: str, headers: Mapping[str, object], body: bytes) -> DeadLetter:
        """Rebuild a dead letter from a message consumed off the dead-letter exchange.

        Messages the bus dead-lettered carry the ``x-tai-dead-letter-*`` headers; messages
        the broker dead-lettered (delivery limit exceeded while no consumer could report
        it) carry RabbitMQ's ``x-first-death-*`` headers instead.
        """
        # x-death lists the broker's dead-letterings, newest first: a requeued message that
        # the broker gave up on again names its queue there, not in x-first-death-queue
        deaths = headers.get("x-death")
        latest: Mapping[str, object] = (
            deaths[0]
            if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping)
            else {}
        )
        reason = headers.get(DEAD_LETTER_REASON_HEADER)
        if reason is None:
            broker_reason = latest.get("reason", headers.get("x-first-death-reason"))
            reason = f"dead-lettered by the broker: {header_text(broker_reason) or 'unknown'}"
        queue = headers.get(
            DEAD_LETTER_QUEUE_HEADER, latest.get("queue", headers.get("x-first-death-queue"))
        )
        exchange = headers.get(
            ORIGINAL_EXCHANGE_HEADER, latest.get("exchange", headers.get("x-first-death-exchange"))
        )
        original = {
            key: value for key, value in headers.items() if key not in _DEAD_LETTER_ANNOTATIONS
        }
        return cls(
            queue=header_text(queue),
            exchange=header_text(exchange),
            routing_key=routing_key,
            headers=original,
            body=body,
            reason=header_text(reason),
        )

    def wire_headers(self) -> dict[str, object]:
        """Return the headers the dead letter travels with on the dead-letter exchange."""
        return {
            **{key: value for key, value in self.headers.items() if key not in _ROUTING_HEADERS},
            DEAD_LETTER_REASON_HEADER: self.reason,
            DEAD_LETTER_QUEUE_HEADER: self.queue,
            ORIGINAL_EXCHANGE_HEADER: self.exchange,
        }

    def original_headers(self) -> dict[str, object]:
        """Return the headers the message was first published with (no annotation, no route)."""
        return {
            key: value
            for key, value in self.headers.items()
            if key not in _ROUTING_HEADERS
            and key not in _BROKER_ANNOTATIONS
            and not key.startswith(_BROKER_ANNOTATION_PREFIXES)
        }

    def requeue_headers(self, marker: str) -> dict[str, object]:
        """Return the headers of this letter's copy on its way back to ``queue``.

        The CC header routes the copy into the requeue queue, whose broker dead-letters it to
        the default exchange and so to ``queue``; the message arrives with the headers it was
        first published with, plus the exchange it was first published on.
        """
        return {
            **self.original_headers(),
            "CC": [REQUEUE_ROUTING_KEY, self.queue],
            ORIGINAL_EXCHANGE_HEADER: self.exchange,
            REQUEUE_MARKER_HEADER: marker,
        }


def header_text(value: object) -> str:
    """Return a header value as text (bytes decoded, None as empty)."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


DeadLetterHandler = Callable[[DeadLetter], Awaitable[None]]
"""Handles one dead letter, undecoded. Returning acks it; raising asks for redelivery."""


@dataclass(frozen=True, slots=True)
class DeadLetterSubscription:
    """A queue on the dead-letter exchange consumed raw (never decoded, never re-dead-lettered).

    The default is the shared dead-letter queue bound with ``#``; a dedicated queue with
    narrower ``routing_keys`` observes only some dead letters (tests, per-service alerts).
    A handler that keeps failing gives up after ``delivery_limit`` deliveries: the dead
    letter is then logged at error level and acknowledged, since there is nowhere further
    to send it.
    """

    handler: DeadLetterHandler
    queue: str = DEAD_LETTER_QUEUE
    routing_keys: Sequence[str] = ("#",)
    prefetch: int = DEFAULT_PREFETCH
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT

    def __post_init__(self) -> None:
        _check_limits(self.queue, self.prefetch, self.delivery_limit)
        if not self.routing_keys:
            raise ValueError(f"dead-letter subscription {self.queue!r} has no routing keys")


class MessageBus(Protocol):
    """Publish messages and consume queues; at-least-once, acked after the handler returns."""

    producer: str

    async def start(self) -> None:
        """Connect, declare the topology, and start consuming registered subscriptions."""
        ...

    async def subscribe(self, subscription: Subscription) -> None:
        """Declare a queue with its bindings and consume it (also after start)."""
        ...

    async def subscribe_dead_letters(self, subscription: DeadLetterSubscription) -> None:
        """Declare a queue on the dead-letter exchange and consume it raw."""
        ...

    async def publish(
        self,
        message: Message,
        *,
        cause: MessageHeaders | None = None,
        headers: MessageHeaders | None = None,
    ) -> MessageHeaders:
        """Publish and wait for the broker's confirm; return the headers sent.

        ``cause`` continues its correlation id; ``headers`` fixes them (outbox replays).
        """
        ...

    async def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: dict[str, object],
    ) -> None:
        """Publish bytes as they are (tests of hostile input; the outbox's stored payloads)."""
        ...

    async def close(self) -> None:
        """Stop consuming, let in-flight handlers finish, then disconnect."""
        ...
