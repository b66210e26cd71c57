"""Fixtures for the ingestion unit tests: a migrated SQLite store, a bus recorder, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tai_bus.api import Binding, Subscription
from tai_bus.memory import InMemoryBus
from tai_core.clock import FakeClock
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_ingestion.metrics import IngestionMetrics
from tai_store import Store
from tai_telemetry.metrics import Telemetry

MONDAY = datetime(2024, 1, 8, 0, 0, tzinfo=UTC)


class Recorder:
    """Collects every message delivered to a queue."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, envelope: Envelope[Message]) -> None:
        self.messages.append(envelope.message)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY)


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry("ingestion-test")


@pytest.fixture
def metrics(telemetry: Telemetry) -> IngestionMetrics:
    return IngestionMetrics.create(telemetry.registry)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    ledger = Store(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await ledger.migrate()
    yield ledger
    await ledger.close()


@pytest.fixture
async def bus(clock: FakeClock) -> AsyncIterator[InMemoryBus]:
    memory_bus = InMemoryBus("ingestion", clock=clock, deterministic=True)
    await memory_bus.start()
    yield memory_bus
    await memory_bus.close()


@pytest.fixture
async def bars_seen(bus: InMemoryBus) -> Recorder:
    recorder = Recorder()
    await bus.subscribe(Subscription("test.bars", [Binding("market.bar.#")], recorder))
    return recorder


@pytest.fixture
async def alerts_seen(bus: InMemoryBus) -> Recorder:
    recorder = Recorder()
    await bus.subscribe(Subscription("test.alerts", [Binding("alert.*")], recorder))
    return recorder
