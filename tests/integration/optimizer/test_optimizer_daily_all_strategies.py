"""The nightly job against the local PostgreSQL and RabbitMQ: all five strategies, one report.

``trading-ai optimize --daily`` (the CronJob's command line, with few trials to stay short)
re-optimises sma_cross, scalping, intraday and swing on the ledger's bars and retrains the
ml_driven model; every run is stored in the ledger and announced on the bus, and the command
prints the report of all five.
"""

from __future__ import annotations

import asyncio
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from tai_bus import Binding, Subscription, create_bus
from tai_core.clock import SystemClock
from tai_events import Message
from tai_events.codec import Envelope
from tai_events.market import Timeframe
from tai_events.research import ResearchRunFinished, ResearchRunStatus
from tai_events.topics import ALL_RESEARCH_RUNS
from tai_ingestion.samples import sample_path
from tai_optimizer.daily import ALL_STRATEGIES
from tai_optimizer.synthetic import bars_from_frame
from tai_store import Store
from tai_store.research_repository import ResearchRepository
from tests.e2e.conftest import Broker, broker, database_url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

OBSERVER_QUEUE = "test.daily.research-runs"


def _observer(url: str, handler: object = None) -> Subscription:
    async def ignore(_envelope: Envelope[Message]) -> None:
        return None

    return Subscription(
        queue=OBSERVER_QUEUE,
        bindings=[Binding(ALL_RESEARCH_RUNS)],
        handler=handler or ignore,  # type: ignore[arg-type]
    )


async def _prepare(url: str, amqp_url: str) -> None:
    """Store 2,000 EURUSD bars; declare the observer's queue before the job publishes."""
    frame = pd.read_csv(sample_path("EURUSD.csv"), index_col=0, parse_dates=True).iloc[-2_000:]
    store = Store(url)
    try:
        await store.migrate()
        await store.store_bars(bars_from_frame(frame, symbol="EURUSD", timeframe=Timeframe.H1))
    finally:
        await store.close()
    bus = create_bus(amqp_url, "test", clock=SystemClock())
    await bus.subscribe(_observer(amqp_url))
    await bus.start()
    await bus.close()


async def _announced(amqp_url: str, expected: int) -> list[ResearchRunFinished]:
    received: list[ResearchRunFinished] = []
    complete = asyncio.Event()

    async def collect(envelope: Envelope[Message]) -> None:
        if isinstance(envelope.message, ResearchRunFinished):
            received.append(envelope.message)
            if len(received) >= expected:
                complete.set()

    bus = create_bus(amqp_url, "test", clock=SystemClock())
    await bus.subscribe(_observer(amqp_url, collect))
    await bus.start()
    try:
        await asyncio.wait_for(complete.wait(), timeout=60)
    finally:
        await bus.close()
    return received


async def _stored_runs(url: str) -> list[tuple[str, str, str]]:
    store = Store(url)
    try:
        async with store.transaction() as unit:
            runs = await ResearchRepository(unit.session).list_runs()
    finally:
        await store.close()
    return [(run.kind, run.strategy, run.status) for run in runs]


def test_daily_job_optimises_all_five_strategies_and_finishes_with_a_report(
    broker: Broker,  # noqa: F811
    database_url: str,  # noqa: F811
) -> None:
    # Arrange
    from tai_cli.commands import app  # noqa: PLC0415

    asyncio.run(_prepare(database_url, broker.url))

    # Act: the CronJob's command, re-optimising whatever the drift, with few trials
    result = CliRunner().invoke(
        app,
        ["optimize", "--daily", "--always", "--trials", "3", "--plan-trials", "2", "--folds", "2"],
        env={"DATABASE_URL": database_url, "AMQP_URL": broker.url, "COLUMNS": "200"},
    )

    # Assert: one report of all five, each decided, on the ledger's bars
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{\n") :])
    assert report["succeeded"] is True
    assert report["failures"] == {}
    assert set(report["strategies"]) == set(ALL_STRATEGIES)
    for name, outcome in report["strategies"].items():
        assert outcome["action"] in {
            "rejected_by_gates",
            "shadow_started",
            "promoted",
            "not_promoted",
        }, name
        assert outcome["decision"], name
        assert outcome["data_source"] == "ledger", name
    # ... stored in the ledger ...
    runs = asyncio.run(_stored_runs(database_url))
    assert sorted((kind, strategy) for kind, strategy, _ in runs) == sorted(
        [("daily", name) for name in ALL_STRATEGIES if name != "ml_driven"]
        + [("retrain", "ml_driven")]
    )
    assert {status for _, _, status in runs} == {"succeeded"}
    # ... and announced on the bus
    announced = asyncio.run(_announced(broker.url, len(ALL_STRATEGIES)))
    assert {(m.kind, m.subject.split("-")[0]) for m in announced} >= {
        ("daily", name) for name in ALL_STRATEGIES if name != "ml_driven"
    }
    assert all(m.status is ResearchRunStatus.SUCCEEDED for m in announced)
    assert any(m.kind == "retrain" for m in announced)
