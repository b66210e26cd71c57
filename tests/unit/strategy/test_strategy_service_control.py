"""The strategy service on the in-memory bus: ConfigureStrategy commands and their answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import SystemClock
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.control import ConfigureStrategy
from tai_events.orders import OrderRequested
from tai_events.strategies import StrategyParametersUpdated
from tai_events.topics import STRATEGY_PARAMS_UPDATED
from tai_store import Store
from tai_strategy.app import (
    BARS_QUEUE,
    CONTROL_QUEUE,
    OUTCOMES_QUEUE,
    PREDICTIONS_QUEUE,
    StrategyApp,
    create_app,
)
from tai_strategy.config import StrategySettings
from tai_strategy.sma_cross import SmaCrossStrategy
from tai_telemetry.metrics import Telemetry
from tests.factories import make_bar


@dataclass
class Service:
    bus: InMemoryBus
    app: StrategyApp
    updates: list[StrategyParametersUpdated]
    orders: list[OrderRequested]
    announced: list[StrategyParametersUpdated]


async def _service(tmp_path: Path, **settings: object) -> AsyncIterator[Service]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'strategy.sqlite'}"
    clock = SystemClock()
    telemetry = Telemetry(service="strategy-test")
    store = Store(url)
    await store.migrate()
    bus = InMemoryBus("test", clock=clock, telemetry=telemetry, deterministic=True)
    app = create_app(
        StrategySettings(database_url=url, amqp_url="memory://", **settings),  # type: ignore[arg-type]
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
    )
    updates: list[StrategyParametersUpdated] = []
    orders: list[OrderRequested] = []

    async def collect(envelope: Envelope[Message]) -> None:
        message = envelope.message
        if isinstance(message, StrategyParametersUpdated):
            updates.append(message)
        elif isinstance(message, OrderRequested):
            orders.append(message)

    await bus.subscribe(
        Subscription(
            queue="test.strategy-control.observer",
            bindings=[Binding(STRATEGY_PARAMS_UPDATED), Binding("order.requested")],
            handler=collect,
        )
    )
    await bus.start()
    await app.start()
    await bus.drain()
    announced = list(updates)
    updates.clear()  # the tests below look at what changes; the start-up state is kept apart
    try:
        yield Service(bus, app, updates, orders, announced)
    finally:
        await app.stop()
        await bus.close()
        await store.close()


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    async for running in _service(tmp_path):
        yield running


def _command(**fields: object) -> ConfigureStrategy:
    return ConfigureStrategy(
        requested_by="admin@test",
        requested_at=datetime(2024, 1, 1, tzinfo=UTC),
        **fields,
    )


def test_default_service_runs_the_whole_portfolio_and_follows_its_orders(
    service: Service,
) -> None:
    queues = [subscription.queue for subscription in service.app.subscriptions()]
    assert queues == [BARS_QUEUE, OUTCOMES_QUEUE, CONTROL_QUEUE, PREDICTIONS_QUEUE]
    assert sorted(service.app.book.slots) == [
        "intraday",
        "ml_driven",
        "scalping",
        "sma_cross",
        "swing",
    ]
    strategy = service.app.book.slots["sma_cross"].strategy
    assert isinstance(strategy, SmaCrossStrategy)
    assert (strategy.parameters.fast, strategy.parameters.slow) == (10, 30)


async def test_configure_command_reparameterises_and_announces_the_new_parameters(
    service: Service,
) -> None:
    # Act
    await service.bus.publish(_command(strategy="sma_cross", parameters={"fast": 5}))
    await service.bus.drain()
    # Assert
    (update,) = service.updates
    assert (update.strategy, update.enabled, update.updated_by) == (
        "sma_cross",
        True,
        "admin@test",
    )
    assert update.parameters["fast"] == 5
    assert update.parameters["slow"] == 30
    strategy = service.app.book.slots["sma_cross"].strategy
    assert isinstance(strategy, SmaCrossStrategy)
    assert strategy.parameters.fast == 5


async def test_disabled_strategy_publishes_no_orders(service: Service) -> None:
    # Arrange: a fall then a rise makes a golden cross for sma_cross(2, 4).
    await service.bus.publish(_command(strategy="sma_cross", parameters={"fast": 2, "slow": 4}))
    await service.bus.publish(_command(strategy="sma_cross", enabled=False))
    closes = [10, 9, 8, 7, 6, 5, 6, 7, 8, 9, 10, 11, 12]
    # Act
    for index, close in enumerate(closes):
        await service.bus.publish(make_bar(index, close))
    await service.bus.drain()
    # Assert
    assert [update.enabled for update in service.updates] == [True, False]
    assert service.orders == []


async def test_enabled_strategy_publishes_orders_tagged_with_its_name(service: Service) -> None:
    await service.bus.publish(_command(strategy="sma_cross", parameters={"fast": 2, "slow": 4}))
    for index, close in enumerate([10, 9, 8, 7, 6, 5, 6, 7, 8, 9, 10, 11, 12]):
        await service.bus.publish(make_bar(index, close))
    await service.bus.drain()
    assert [(order.strategy, order.side.value) for order in service.orders] == [
        ("sma_cross", "BUY")
    ]
    assert "golden cross" in service.orders[0].reason


async def test_invalid_configure_command_is_dead_lettered_with_its_reason(
    service: Service,
) -> None:
    await service.bus.publish(_command(strategy="sma_cross", parameters={"fast": 50}))
    await service.bus.drain()
    assert service.updates == []
    (dead,) = service.bus.dead_letters
    assert dead.queue == CONTROL_QUEUE
    assert "fast" in dead.reason


async def test_configured_strategies_and_regime_weights_come_from_settings(
    tmp_path: Path,
) -> None:
    async for running in _service(
        tmp_path,
        strategies=("sma_cross", "ml_driven"),
        parameters={"ml_driven": {"risk_per_trade_pct": 0.8}},
        regime_weights={"ml_driven": {"volatile": 0.0}},
    ):
        queues = [subscription.queue for subscription in running.app.subscriptions()]
        assert PREDICTIONS_QUEUE in queues
        slot = running.app.book.slots["ml_driven"]
        assert slot.weights == {"volatile": 0.0}
        assert slot.status()["risk_per_trade_pct"] == 0.8


async def test_the_service_announces_every_strategy_state_at_start(service: Service) -> None:
    # every strategy, whether it runs and with which parameters, for late subscribers too
    assert sorted(update.strategy for update in service.announced) == sorted(service.app.book.slots)
    assert all(update.enabled for update in service.announced)
    sma = next(update for update in service.announced if update.strategy == "sma_cross")
    assert (sma.parameters["fast"], sma.parameters["slow"]) == (10, 30)
