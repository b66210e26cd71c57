"""Fixtures shared by the bus unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from tai_bus import InMemoryBus
from tai_core.clock import FakeClock
from tai_events import TickReceived

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


def make_tick(symbol: str = "EURUSD", bid: float = 1.1000) -> TickReceived:
    """Return a valid tick for a symbol."""
    return TickReceived(symbol=symbol, quoted_at=T0, bid=bid, ask=bid + 0.0002, source="test")


@pytest.fixture
def tick() -> Callable[..., TickReceived]:
    """Build valid ticks."""
    return make_tick


@pytest.fixture
def clock() -> FakeClock:
    """A clock fixed at T0."""
    return FakeClock(T0)


@pytest.fixture(params=[True, False], ids=["deterministic", "concurrent"])
async def bus(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[InMemoryBus]:
    """An in-memory bus in each delivery mode (same semantics expected from both)."""
    memory_bus = InMemoryBus("tester", clock=clock, deterministic=request.param)
    yield memory_bus
    await memory_bus.close()
