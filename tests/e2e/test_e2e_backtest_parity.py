"""Backtest == live: bars replayed through the services on RabbitMQ fill exactly as the
event-driven backtester fills them on the same data, under the live conventions (the strategy
service's sma_cross defaults, its fixed quantity, commission 0.0002 of notional, fills at the
next bar's open)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from tai_events.market import Timeframe
from tai_ingestion.replay import load_bars
from tai_ingestion.samples import sample_path
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import BacktestConfig, EventDrivenBacktester
from tai_strategy.config import StrategySettings
from tai_strategy.sma_cross import SmaCrossParameters, SmaCrossStrategy
from tests.e2e.conftest import Broker, ServiceProcesses

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600)]

BARS = 1_500
LIVE_COMMISSION_RATE = 0.0002
"""The execution service's paper-broker default (ExecutionSettings.commission_rate)."""


def _subset(tmp_path: Path) -> Path:
    """Write the first BARS rows of the EURUSD sample to a CSV of the same format."""
    frame = pd.read_csv(sample_path("EURUSD.csv"), index_col=0)
    path = tmp_path / "EURUSD.csv"
    frame.iloc[:BARS].to_csv(path)
    return path


def _live_fills(database_url: str) -> list[tuple[str, float, float, float, str]]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT side, quantity, price, commission, filled_at FROM fills "
                "ORDER BY filled_at, fill_id"
            )
        ).all()
    engine.dispose()
    return [
        (
            str(side),
            round(float(quantity), 9),
            round(float(price), 12),
            round(float(commission), 9),
            filled_at.isoformat(),
        )
        for side, quantity, price, commission, filled_at in rows
    ]


def _orders_without_fill(database_url: str) -> list[tuple[object, ...]]:
    """Return the orders that did not fill, with their last state and what was said of them."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT o.order_id, o.side, o.requested_quantity, o.state, o.signal_time, "
                "(SELECT string_agg(e.state || ': ' || coalesce(e.reason, ''), ' | ') "
                "FROM order_events e WHERE e.order_id = o.order_id) "
                "FROM orders o WHERE o.state <> 'FILLED' ORDER BY o.signal_time"
            )
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def _wait_for_fills(broker: Broker, database_url: str, timeout: float) -> None:
    """Wait until the service queues are empty and the fill count stops changing."""
    engine = create_engine(database_url)
    deadline = time.monotonic() + timeout
    previous: int | None = None
    try:
        while time.monotonic() < deadline:
            busy = {
                name: depth
                for name, depth in broker.queue_depths().items()
                if depth and name.startswith("tai.") and "dead" not in name
            }
            with engine.connect() as connection:
                count = int(connection.execute(text("SELECT count(*) FROM fills")).scalar_one())
                unpublished = int(
                    connection.execute(
                        text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    ).scalar_one()
                )
            if not busy and unpublished == 0 and count == previous:
                return
            previous = count
            time.sleep(1.0)
    finally:
        engine.dispose()
    pytest.fail(f"services did not settle in {timeout}s: {broker.queue_depths()}")


def test_services_on_rabbitmq_fill_exactly_like_the_event_driven_backtester(
    services: ServiceProcesses, broker: Broker, database_url: str, tmp_path: Path
) -> None:
    # Arrange: the live pipeline with its defaults, and the same bars for the backtester
    data = _subset(tmp_path)
    # Risk's staleness and order-rate guards measure the live feed against the wall clock
    # (and its market queue races the order queue during a fast replay); the backtester's
    # risk engine sees no feed, so those two guards are opened wide. Every other limit keeps
    # its live default.
    services.start(
        "risk", {"RISK_STALE_AFTER_BARS": "1000000", "RISK_MAX_ORDERS_PER_MINUTE": "1000000"}
    )
    services.wait_ready("risk")
    services.start("execution")
    services.wait_ready("execution")
    # sma_cross alone: the backtester runs one strategy (the service runs the whole portfolio)
    services.start("strategy", {"STRATEGY_STRATEGIES": '["sma_cross"]'})
    services.wait_ready("strategy")
    live = StrategySettings()
    strategy = SmaCrossStrategy(
        SmaCrossParameters(fast=live.sma_fast, slow=live.sma_slow, quantity=live.quantity)
    )
    bars = load_bars(data, symbol="EURUSD", timeframe=Timeframe.H1).bars
    config = BacktestConfig(cash=100_000.0, costs=CostModel(commission_rate=LIVE_COMMISSION_RATE))

    # Act: replay through ingestion -> strategy -> risk -> execution; backtest the same bars
    services.start(
        "ingestion", {"INGESTION_REPLAY_FILE": str(data), "INGESTION_EXIT_WHEN_DONE": "true"}
    )
    assert services.wait_exit("ingestion", timeout=300) == 0, services.log("ingestion")
    _wait_for_fills(broker, database_url, timeout=180)
    distributed = _live_fills(database_url)
    backtest = EventDrivenBacktester(strategy, config).run(bars)

    # Assert: fill for fill the same side, size, price, commission and time
    expected = [
        (
            fill.side.value,
            round(fill.quantity, 9),
            round(fill.price, 12),
            round(fill.commission, 9),
            fill.filled_at.isoformat(),
        )
        for fill in backtest.fills
    ]
    assert len(bars) == BARS
    assert len(expected) > 20
    assert backtest.rejections == []
    assert distributed == expected, _orders_without_fill(database_url)
    for name in ("risk", "execution", "strategy"):
        assert services.processes[name].poll() is None, services.log(name)
