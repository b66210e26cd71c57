"""The strategy service on a real RabbitMQ vhost: ConfigureStrategy on the control exchange is
answered with StrategyParametersUpdated, and an ml_driven strategy trades a prediction."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tai_bus import Binding, Subscription, create_bus
from tai_core.clock import SystemClock
from tai_events import Message
from tai_events.codec import Envelope
from tai_events.control import ConfigureStrategy
from tai_events.market import BarClosed
from tai_events.ml import DEFAULT_TRADE_PLAN, PredictedClass, PredictionMade
from tai_events.orders import OrderRequested, Side
from tai_events.strategies import StrategyParametersUpdated
from tai_events.topics import ORDER_REQUESTED, STRATEGY_PARAMS_UPDATED
from tai_store import Store
from tai_strategy.app import BARS_QUEUE, create_app
from tai_strategy.config import StrategySettings
from tai_telemetry.metrics import Telemetry
from tests.e2e.conftest import Broker, broker, database_url  # noqa: F401  (fixtures)
from tests.factories import make_bar

pytestmark = pytest.mark.integration


def _prediction(bar: BarClosed) -> PredictionMade:
    return PredictionMade(
        symbol=bar.symbol,
        timeframe=bar.timeframe,
        bar_closed_at=bar.closed_at,
        model_id="mdl-integration",
        feature_set_version="v1",
        probabilities={
            PredictedClass.LONG: 0.8,
            PredictedClass.SHORT: 0.1,
            PredictedClass.NEUTRAL: 0.1,
        },
        predicted_class=PredictedClass.LONG,
        regime="trend",
        plan=DEFAULT_TRADE_PLAN,
    )


def _answers(updates: list[StrategyParametersUpdated]) -> list[StrategyParametersUpdated]:
    """Return the answers to the configure command (not the start-up announcements)."""
    return [update for update in updates if update.updated_by == "admin@test"]


async def _until(condition: Callable[[], bool]) -> None:
    """Poll a condition (the consumers run in the background) for at most a minute."""
    async with asyncio.timeout(60):
        while not condition():  # noqa: ASYNC110 - a queue depth has no event to await
            await asyncio.sleep(0.1)


async def test_control_command_and_prediction_flow_on_rabbitmq(
    broker: Broker,  # noqa: F811
    database_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Arrange: sma_cross and ml_driven running; an observer of answers and orders
    clock = SystemClock()
    store = Store(database_url)
    await store.migrate()
    telemetry = Telemetry(service="strategy")
    bus = create_bus(broker.url, "strategy", clock=clock, telemetry=telemetry)
    updates: list[StrategyParametersUpdated] = []
    orders: list[OrderRequested] = []

    async def observe(envelope: Envelope[Message]) -> None:
        if isinstance(envelope.message, StrategyParametersUpdated):
            updates.append(envelope.message)
        elif isinstance(envelope.message, OrderRequested):
            orders.append(envelope.message)

    await bus.subscribe(
        Subscription(
            queue="test.strategy.observer",
            bindings=[Binding(STRATEGY_PARAMS_UPDATED), Binding(ORDER_REQUESTED)],
            handler=observe,
        )
    )
    app = create_app(
        StrategySettings(
            database_url=database_url,
            amqp_url=broker.url,
            ops_port=0,
            strategies=("sma_cross", "ml_driven"),
        ),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
    )
    await bus.start()
    await app.start()
    try:
        # Act 1: change ml_driven's risk and regime weight at run time through control
        await bus.publish(
            ConfigureStrategy(
                requested_by="admin@test",
                requested_at=datetime(2024, 1, 1, tzinfo=UTC),
                strategy="ml_driven",
                parameters={"risk_per_trade_pct": 0.75, "weight.trend": 0.5},
            )
        )
        # (the service also announced every strategy's state when it started)
        await _until(lambda: len(_answers(updates)) == 1)
        # Act 2: bars, then a confident prediction for the last one
        bars = [make_bar(index, 1.10 + 0.001 * (index % 4)) for index in range(20)]
        for bar in bars:
            await bus.publish(bar)
        await _until(lambda: broker.queue_depths().get(BARS_QUEUE, 1) == 0)
        await bus.publish(_prediction(bars[-1]))
        await _until(lambda: any(order.strategy == "ml_driven" for order in orders))

        # Assert
        (update,) = _answers(updates)
        assert update.strategy == "ml_driven"
        assert update.parameters["risk_per_trade_pct"] == 0.75
        assert update.parameters["weight.trend"] == 0.5
        (order,) = [order for order in orders if order.strategy == "ml_driven"]
        assert order.side is Side.BUY
        assert order.signal_time == bars[-1].closed_at
        assert order.confidence == pytest.approx(0.8)
        assert order.stop_loss is not None
        assert order.stop_loss < bars[-1].close
        assert "regime trend" in order.reason
    finally:
        await app.stop()
        await bus.close()
        await store.close()
