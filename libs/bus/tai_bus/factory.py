"""Choose the transport from a URL."""

from __future__ import annotations

from tai_bus.amqp import AmqpBus
from tai_bus.api import MessageBus
from tai_bus.memory import InMemoryBus
from tai_bus.processing import TransientErrorClassifier
from tai_core.clock import Clock
from tai_telemetry import Telemetry

MEMORY_URL = "memory://"


def create_bus(
    url: str,
    producer: str,
    *,
    clock: Clock | None = None,
    telemetry: Telemetry | None = None,
    deterministic: bool = False,
    is_transient: TransientErrorClassifier | None = None,
) -> MessageBus:
    """Return an in-memory bus for ``memory://`` and a RabbitMQ bus for ``amqp(s)://``.

    ``is_transient`` tells which handler errors mean a dependency is down: such a delivery is
    retried in place (with back-off) instead of counting towards its delivery limit.
    """
    scheme = url.partition("://")[0].lower()
    if url == MEMORY_URL or scheme == "memory":
        return InMemoryBus(
            producer,
            clock=clock,
            telemetry=telemetry,
            deterministic=deterministic,
            is_transient=is_transient,
        )
    if scheme in ("amqp", "amqps"):
        if deterministic:
            raise ValueError("deterministic delivery exists only on the in-memory bus")
        return AmqpBus(url, producer, clock=clock, telemetry=telemetry, is_transient=is_transient)
    raise ValueError(f"unsupported bus URL scheme {scheme!r}: use memory://, amqp:// or amqps://")
