"""A publish during a broker outage is sent again once the robust connection is back."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import aiormq
import pytest

from tai_bus.amqp import AmqpBus
from tai_events.topics import EVENTS_EXCHANGE
from tests.factories import make_bar


class _FlakyExchange:
    """Fails the first publishes as a restarting broker would, then confirms."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.published: list[str] = []

    async def publish(self, message: aio_pika.Message, routing_key: str, **_: Any) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.published.append(routing_key)


class _Connection:
    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.connected.set()


def _bus_with(exchange: _FlakyExchange, *, publish_timeout: float = 5.0) -> AmqpBus:
    bus = AmqpBus("amqp://guest:guest@127.0.0.1:1/", "test", publish_timeout=publish_timeout)
    # Wire the connected state directly: this unit test exercises only the retry policy.
    bus._started = True
    bus._exchanges[EVENTS_EXCHANGE] = exchange  # type: ignore[assignment]
    bus._connection = _Connection()  # type: ignore[assignment]
    return bus


async def test_publish_during_a_reconnect_is_sent_once_the_connection_is_back() -> None:
    # Arrange
    exchange = _FlakyExchange(
        [
            aiormq.exceptions.ChannelInvalidStateError("channel closed"),
            aiormq.exceptions.ConnectionClosed(320, "CONNECTION_FORCED"),
        ]
    )
    bus = _bus_with(exchange)
    # Act
    await bus.publish(make_bar(0, 1.1))
    # Assert
    assert exchange.published == ["market.bar.1h.EURUSD"]


async def test_publish_gives_up_after_the_timeout() -> None:
    exchange = _FlakyExchange([ConnectionResetError("down")] * 1000)
    bus = _bus_with(exchange, publish_timeout=0.3)
    with pytest.raises(ConnectionResetError):
        await bus.publish(make_bar(0, 1.1))


async def test_a_refused_message_is_not_retried() -> None:
    exchange = _FlakyExchange([aio_pika.exceptions.DeliveryError(None, None)])  # type: ignore[arg-type]
    bus = _bus_with(exchange)
    with pytest.raises(aio_pika.exceptions.DeliveryError):
        await bus.publish(make_bar(0, 1.1))
    assert exchange.published == []
