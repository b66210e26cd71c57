"""On a real RabbitMQ vhost the strategy service learns its orders' outcomes from the bus: a
refused entry gets no exit, a partial fill is exited exactly and reduce-only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from tai_bus import Binding, Subscription, create_bus
from tai_bus.api import MessageBus
from tai_core.clock import SystemClock
from tai_events import Message
from tai_events.codec import Envelope
from tai_events.market import Timeframe
from tai_events.orders import OrderRequested, OrderState, Side
from tai_events.topics import ORDER_REQUESTED
from tai_store import Store
from tai_strategy.app import BARS_QUEUE, OUTCOMES_QUEUE, StrategyApp, create_app
from tai_strategy.config import StrategySettings
from tai_telemetry.metrics import Telemetry
from tests.e2e.conftest import Broker, broker, database_url  # noqa: F401  (fixtures)
from tests.unit.strategy.test_strategy_service_positions import (
    FALLING,
    HOLD,
    _bars,
    _ended,
    _fill,
    _rejection,
)

pytestmark = pytest.mark.integration


async def _until(condition: Callable[[], bool]) -> None:
    """Poll a condition (the consumers run in the background) for at most a minute."""
    async with asyncio.timeout(60):
        while not condition():  # noqa: ASYNC110 - a queue depth has no event to await
            await asyncio.sleep(0.05)


@dataclass
class RunningStrategy:
    """The strategy service (scalping alone, 5-minute bars) on a real vhost, and its orders."""

    app: StrategyApp
    bus: MessageBus
    orders: list[OrderRequested]


@pytest.fixture
async def scalping(
    broker: Broker,  # noqa: F811
    database_url: str,  # noqa: F811
) -> AsyncIterator[RunningStrategy]:
    clock = SystemClock()
    store = Store(database_url)
    await store.migrate()
    telemetry = Telemetry(service="strategy")
    bus = create_bus(broker.url, "strategy", clock=clock, telemetry=telemetry)
    orders: list[OrderRequested] = []

    async def observe(envelope: Envelope[Message]) -> None:
        if isinstance(envelope.message, OrderRequested):
            orders.append(envelope.message)

    await bus.subscribe(Subscription("test.strategy.orders", [Binding(ORDER_REQUESTED)], observe))
    app = create_app(
        StrategySettings(
            database_url=database_url,
            amqp_url=broker.url,
            ops_port=0,
            timeframe=Timeframe.M5,
            strategies=("scalping",),
            parameters={"scalping": {"min_confirmations": 0, "max_holding_bars": HOLD}},
        ),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
    )
    await bus.start()
    await app.start()
    try:
        yield RunningStrategy(app, bus, orders)
    finally:
        await app.stop()
        await bus.close()
        await store.close()


async def test_outcomes_on_rabbitmq_decide_what_the_strategy_exits(
    scalping: RunningStrategy,
    broker: Broker,  # noqa: F811
) -> None:
    # Arrange
    bars = _bars(HOLD + 2)

    def drained() -> bool:
        depths = broker.queue_depths()
        return depths.get(BARS_QUEUE, 1) == 0 and depths.get(OUTCOMES_QUEUE, 1) == 0

    # Act 1: the entry, refused by risk; the holding time passes
    for bar in bars[: len(FALLING)]:
        await scalping.bus.publish(bar)
    await _until(lambda: len(scalping.orders) == 1)
    (entry,) = scalping.orders
    await scalping.bus.publish(_rejection(entry))
    for bar in bars[len(FALLING) :]:
        await scalping.bus.publish(bar)
    await _until(drained)
    # Assert: no exit for a position never held
    assert scalping.orders == [entry]
    assert entry.quantity is None
    assert scalping.app.context.positions.held("scalping", "EURUSD") == 0.0


async def test_a_partial_fill_on_rabbitmq_is_exited_exactly(
    scalping: RunningStrategy,
    broker: Broker,  # noqa: F811
) -> None:
    # Act: every bar first (the fill lags behind), then the partial fill and the expiry
    bars = _bars(HOLD + 2)
    for bar in bars:
        await scalping.bus.publish(bar)
    await _until(lambda: len(scalping.orders) == 1)
    await _until(lambda: broker.queue_depths().get(BARS_QUEUE, 1) == 0)
    (entry,) = scalping.orders
    await scalping.bus.publish(_fill(entry, 4_000.0))
    await scalping.bus.publish(_ended(entry, OrderState.EXPIRED, 4_000.0))
    await _until(lambda: len(scalping.orders) == 2)
    # Assert: the exit asks for exactly the filled part, reduce-only, at its own time
    exit_order = scalping.orders[1]
    assert exit_order.quantity == 4_000.0
    assert exit_order.reduce_only
    assert exit_order.side is Side.SELL
    assert exit_order.signal_time == bars[len(FALLING) - 1 + HOLD].closed_at
