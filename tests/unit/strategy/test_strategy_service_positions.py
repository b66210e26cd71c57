"""The strategy service follows its orders' outcomes on the bus and exits what it really holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tai_bus import InMemoryBus
from tai_bus.api import Binding, Subscription
from tai_core.clock import SystemClock
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.market import BarClosed, Timeframe
from tai_events.orders import (
    FillExecuted,
    OrderRejected,
    OrderRequested,
    OrderState,
    OrderStatusChanged,
)
from tai_store.database import Store
from tai_strategy.app import StrategyApp, create_app
from tai_strategy.config import StrategySettings
from tai_telemetry.metrics import Telemetry
from tests.factories import make_bar

# Scalping's test series: forty quiet bars, then four falling closes; the last is oversold.
FALLING = [100.0 + (0.2 if index % 2 else 0.0) for index in range(40)] + [99.6, 99.2, 98.8, 98.4]
HOLD = 5
NOW = datetime(2026, 1, 5, tzinfo=UTC)


def _bars(count_after_entry: int) -> list[BarClosed]:
    closes = [*FALLING, *([98.4] * count_after_entry)]
    return [make_bar(index, close, timeframe=Timeframe.M5) for index, close in enumerate(closes)]


@dataclass
class Service:
    bus: InMemoryBus
    app: StrategyApp
    store: Store
    orders: list[OrderRequested]

    async def send(self, *messages: Message) -> None:
        for message in messages:
            await self.bus.publish(message)
            await self.bus.drain()


async def _service(url: str) -> AsyncIterator[Service]:
    clock = SystemClock()
    telemetry = Telemetry(service="strategy-test")
    store = Store(url)
    await store.migrate()
    bus = InMemoryBus("test", clock=clock, telemetry=telemetry, deterministic=True)
    settings = StrategySettings(
        database_url=url,
        amqp_url="memory://",
        timeframe=Timeframe.M5,
        strategies=("scalping",),
        parameters={"scalping": {"min_confirmations": 0, "max_holding_bars": HOLD}},
    )
    app = create_app(settings, bus=bus, store=store, clock=clock, telemetry=telemetry)
    orders: list[OrderRequested] = []

    async def collect(envelope: Envelope[Message]) -> None:
        if isinstance(envelope.message, OrderRequested):
            orders.append(envelope.message)

    await bus.subscribe(Subscription("test.orders", [Binding("order.requested")], collect))
    await bus.start()
    await app.start()
    try:
        yield Service(bus, app, store, orders)
    finally:
        await app.stop()
        await bus.close()
        await store.close()


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    async for running in _service(f"sqlite+aiosqlite:///{tmp_path / 'strategy.sqlite'}"):
        yield running


def _rejection(entry: OrderRequested) -> OrderRejected:
    return OrderRejected(
        order_id=entry.order_id,
        strategy=entry.strategy,
        symbol=entry.symbol,
        side=entry.side,
        quantity=entry.quantity,
        rule="max_position_notional",
        reason="no room",
        decided_at=NOW,
    )


def _fill(entry: OrderRequested, quantity: float) -> FillExecuted:
    return FillExecuted(
        fill_id=f"fill-{entry.order_id}",
        order_id=entry.order_id,
        strategy=entry.strategy,
        symbol=entry.symbol,
        side=entry.side,
        quantity=quantity,
        price=98.5,
        commission=0.0,
        filled_at=NOW,
        broker="paper",
    )


def _ended(entry: OrderRequested, state: OrderState, filled: float) -> OrderStatusChanged:
    return OrderStatusChanged(
        order_id=entry.order_id,
        symbol=entry.symbol,
        state=state,
        previous_state=OrderState.SUBMITTED,
        filled_quantity=filled,
        remaining_quantity=0.0,
        changed_at=NOW,
    )


async def test_entry_is_an_intent_risk_sizes(service: Service) -> None:
    await service.send(*_bars(0))
    (entry,) = service.orders
    assert entry.quantity is None
    assert entry.risk_budget_pct == 0.75
    assert entry.style is not None
    assert entry.style.value == "scalping"


async def test_after_a_rejected_entry_no_exit_is_sent(service: Service) -> None:
    # Arrange
    bars = _bars(HOLD + 2)
    await service.send(*bars[: len(FALLING)])
    (entry,) = service.orders
    # Act: risk refuses the entry; the trade's holding time passes
    await service.send(_rejection(entry), *bars[len(FALLING) :])
    # Assert: no exit for a position the strategy does not hold
    assert service.orders == [entry]
    assert service.app.context.positions.held("scalping", "EURUSD") == 0.0


async def test_a_partial_fill_is_exited_exactly_reduce_only(service: Service) -> None:
    # Arrange
    bars = _bars(HOLD + 2)
    await service.send(*bars[: len(FALLING)])
    (entry,) = service.orders
    # Act: 4,000 filled, the rest expired; the holding time passes
    await service.send(
        _fill(entry, 4_000.0), _ended(entry, OrderState.EXPIRED, 4_000.0), *bars[len(FALLING) :]
    )
    # Assert
    entry_again, exit_order = service.orders
    assert entry_again == entry
    assert exit_order.quantity == 4_000.0
    assert exit_order.reduce_only
    assert exit_order.side.value == "SELL"


async def test_an_exit_due_before_its_fill_arrives_is_sent_once_it_does(
    service: Service,
) -> None:
    # Arrange: every bar arrives before the entry's outcome (a backlog)
    bars = _bars(HOLD + 2)
    await service.send(*bars)
    (entry,) = service.orders
    # Act
    await service.send(_fill(entry, 9_000.0), _ended(entry, OrderState.FILLED, 9_000.0))
    # Assert: the exit carries the signal time it was due at, not the time it was released
    _, exit_order = service.orders
    assert exit_order.quantity == 9_000.0
    assert exit_order.signal_time == bars[len(FALLING) - 1 + HOLD].closed_at


async def test_positions_are_rebuilt_from_the_ledger_after_a_restart(tmp_path: Path) -> None:
    # Arrange: a first process sends the entry; its fill is written to the ledger
    url = f"sqlite+aiosqlite:///{tmp_path / 'strategy.sqlite'}"
    async for first in _service(url):
        await first.send(*_bars(0))
        (entry,) = first.orders
        async with first.store.transaction() as unit:
            await unit.orders.add(
                order_id=entry.order_id,
                strategy=entry.strategy,
                symbol=entry.symbol,
                side=entry.side,
                order_type=entry.order_type,
                requested_quantity=None,
                approved_quantity=6_000.0,
                reference_price=entry.reference_price,
                signal_time=entry.signal_time,
                at=NOW,
                state=OrderState.FILLED,
            )
            await unit.fills.add(_fill(entry, 6_000.0))
    # Act: a new process starts on the same ledger
    async for second in _service(url):
        # Assert
        positions = second.app.context.positions
        assert positions.held("scalping", "EURUSD") == 6_000.0
        assert positions.orders[entry.order_id].resolved
