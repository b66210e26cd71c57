"""The periodic task ticks until stopped and survives a failing tick."""

from __future__ import annotations

import asyncio

import pytest

from tai_core.periodic import PeriodicTask


async def test_a_failing_tick_does_not_stop_the_timer() -> None:
    # Arrange: the first tick fails
    ticks: list[int] = []
    third_tick = asyncio.Event()

    async def action() -> None:
        ticks.append(len(ticks))
        if len(ticks) == 3:
            third_tick.set()
        if len(ticks) == 1:
            raise ConnectionError("database restarting")

    timer = PeriodicTask("test timer", 0.01, action)
    # Act
    timer.start()
    await asyncio.wait_for(third_tick.wait(), timeout=5)
    await timer.stop()
    stopped_at = len(ticks)
    await asyncio.sleep(0.05)
    # Assert: it kept ticking after the failure, and not after stop
    assert stopped_at >= 3
    assert len(ticks) == stopped_at


def test_a_timer_needs_a_positive_interval() -> None:
    async def action() -> None:
        return None

    with pytest.raises(ValueError, match="positive"):
        PeriodicTask("test timer", 0, action)
