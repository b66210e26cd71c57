"""The bus interface every service codes against; transports implement it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.headers import MessageHeaders
from tai_events.topics import EVENTS_EXCHANGE

Handler = Callable[[Envelope[Message]], Awaitable[None]]
"""Handles one decoded message. Returning acks it; raising asks for redelivery."""

DEFAULT_DELIVERY_LIMIT = 5
"""Deliveries of one message before it is dead-lettered as poison."""
DEFAULT_PREFETCH = 64


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


class PermanentHandlerError(Exception):
    """Raise from a handler for a message that can never succeed: dead-letter it now."""


class MessageBus(Protocol):
    """Publish messages and consume queues; at-least-once, acked after the handler returns."""

    producer: str

    async def start(self) -> None:
        """Connect, declare the topology, and start consuming registered subscriptions."""
        ...

    async def subscribe(self, subscription: Subscription) -> None:
        """Declare a queue with its bindings and consume it (also after start)."""
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
