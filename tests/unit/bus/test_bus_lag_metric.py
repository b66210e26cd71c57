"""Queue lag is measured for every handled message."""

from __future__ import annotations

from tai_bus import Binding, InMemoryBus, Subscription
from tai_events import Message
from tai_events.codec import Envelope
from tai_telemetry.metrics import Telemetry
from tests.factories import make_bar


async def test_handled_message_records_its_queue_lag() -> None:
    # Arrange
    telemetry = Telemetry(service="test")
    bus = InMemoryBus("test", telemetry=telemetry, deterministic=True)

    async def handle(_envelope: Envelope[Message]) -> None:
        return None

    await bus.subscribe(Subscription("test.lag", [Binding("market.bar.#")], handle))
    await bus.start()
    # Act
    await bus.publish(make_bar(0, 1.1))
    await bus.drain()
    await bus.close()
    # Assert
    count = telemetry.registry.get_sample_value(
        "tai_message_lag_seconds_count", {"queue": "test.lag"}
    )
    assert count == 1.0
