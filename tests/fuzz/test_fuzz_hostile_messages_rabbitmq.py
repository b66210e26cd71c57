"""A smaller hostile sample over a real RabbitMQ (throwaway vhost): the AMQP transport
dead-letters each one with a reason, and the valid messages around them are all handled."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tai_bus import AmqpBus, Binding, DeadLetter, DeadLetterSubscription, Subscription
from tai_events import Envelope, HaltTrading, Message, OrderStatusChanged
from tai_events.codec import make_headers
from tai_events.orders import OrderState
from tai_events.topics import ALL_CONTROL, CONTROL_EXCHANGE
from tests.e2e.conftest import Broker, broker  # noqa: F401 - the fixture, used by name
from tests.factories import T0, make_bar
from tests.fuzz.hostile import Hostile, Sample, hostile_messages

pytestmark = pytest.mark.integration

SAMPLE_SIZE = 40


def _samples() -> list[Sample]:
    bar = make_bar(0, 1.1)
    cancelled = OrderStatusChanged(
        order_id="ord-1",
        symbol="EURUSD",
        state=OrderState.CANCELLED,
        previous_state=OrderState.SUBMITTED,
        filled_quantity=0.0,
        remaining_quantity=1000.0,
        changed_at=T0,
    )
    halt = HaltTrading(requested_by="fuzz", requested_at=T0)
    return [
        Sample.of(message, make_headers(message, producer="fuzz", occurred_at=T0))
        for message in (bar, cancelled, halt)
    ]


async def _exercise(url: str, hostile: list[Hostile]) -> tuple[list[DeadLetter], int]:
    queue = f"test.fuzz.{uuid.uuid4().hex[:8]}"
    handled: list[Message] = []
    letters: list[DeadLetter] = []

    async def handle(envelope: Envelope[Message]) -> None:
        handled.append(envelope.message)

    async def observe(letter: DeadLetter) -> None:
        letters.append(letter)

    bus = AmqpBus(url, "fuzz")
    await bus.start()
    try:
        await bus.subscribe(
            Subscription(
                queue,
                [
                    Binding("market.bar.*.*"),
                    Binding("order.cancelled"),
                    Binding(ALL_CONTROL, exchange=CONTROL_EXCHANGE),
                ],
                handle,
            )
        )
        await bus.subscribe_dead_letters(DeadLetterSubscription(observe, queue=f"{queue}.dead"))
        valid = [make_bar(index, 1.1 + index / 1000) for index in range(len(hostile))]
        for bad, good in zip(hostile, valid, strict=True):
            await bus.publish_raw(bad.exchange, bad.routing_key, bad.body, bad.headers)
            await bus.publish(good)
        for _ in range(600):
            if len(handled) >= len(valid) and len(letters) >= len(hostile):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # anything extra would show up now
    finally:
        await bus.close()
    return [letter for letter in letters if letter.queue == queue], len(handled)


def test_hostile_messages_over_rabbitmq_are_dead_lettered_and_valid_ones_handled(
    broker: Broker,  # noqa: F811 - the imported fixture
) -> None:
    @settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(hostile_messages(_samples()), min_size=SAMPLE_SIZE, max_size=SAMPLE_SIZE))
    def check(hostile: list[Hostile]) -> None:
        letters, handled = asyncio.run(_exercise(broker.url, hostile))
        assert handled == len(hostile)
        assert len(letters) == len(hostile)
        assert all(letter.reason.strip() for letter in letters)

    check()
