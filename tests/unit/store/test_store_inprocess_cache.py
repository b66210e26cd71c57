"""The in-process cache: JSON values, TTL on the injected clock, hit and miss counters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tai_core.clock import FakeClock
from tai_events import BarClosed, Timeframe
from tai_store import CacheStats, InProcessCache

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def cache(clock: FakeClock) -> InProcessCache:
    return InProcessCache(clock)


async def test_value_is_returned_until_its_ttl_elapses(
    cache: InProcessCache, clock: FakeClock
) -> None:
    await cache.set_json("risk:snapshot", {"equity": 100.5, "symbols": ["EURUSD"]}, 30)

    clock.advance(timedelta(seconds=29))
    before = await cache.get_json("risk:snapshot")
    clock.advance(timedelta(seconds=1))
    after = await cache.get_json("risk:snapshot")

    assert before == {"equity": 100.5, "symbols": ["EURUSD"]}
    assert after is None


async def test_value_without_ttl_never_expires(cache: InProcessCache, clock: FakeClock) -> None:
    await cache.set_json("config", [1, 2, 3], None)

    clock.advance(timedelta(days=365))

    assert await cache.get_json("config") == [1, 2, 3]


async def test_hits_and_misses_are_counted(cache: InProcessCache) -> None:
    await cache.set_json("present", 1, 10)

    await cache.get_json("present")
    await cache.get_json("present")
    await cache.get_json("absent")

    assert cache.stats == CacheStats(hits=2, misses=1)
    assert cache.stats.hit_ratio == pytest.approx(2 / 3)


async def test_returned_values_are_copies(cache: InProcessCache) -> None:
    value = {"list": [1]}
    await cache.set_json("key", value, 10)

    value["list"].append(2)
    fetched = await cache.get_json("key")
    assert fetched is not None
    fetched["list"].append(3)

    assert await cache.get_json("key") == {"list": [1]}


async def test_overwriting_a_key_resets_its_ttl(cache: InProcessCache, clock: FakeClock) -> None:
    await cache.set_json("key", "old", 10)
    clock.advance(timedelta(seconds=8))
    await cache.set_json("key", "new", 10)

    clock.advance(timedelta(seconds=8))

    assert await cache.get_json("key") == "new"


async def test_expired_entries_are_evicted_on_later_writes(
    cache: InProcessCache, clock: FakeClock
) -> None:
    for index in range(100):
        await cache.set_json(f"short-{index}", index, 1)
    clock.advance(timedelta(seconds=2))

    await cache.set_json("long", 0, 60)

    assert len(cache) == 1


async def test_latest_bar_round_trips_per_symbol_and_timeframe(
    cache: InProcessCache, make_bar: Callable[..., BarClosed]
) -> None:
    hourly = make_bar(T0)
    daily = make_bar(T0, timeframe=Timeframe.D1, close=1.15)

    await cache.set_latest_bar(hourly, 3600)
    await cache.set_latest_bar(daily, 3600)

    assert await cache.latest_bar("EURUSD", Timeframe.H1) == hourly
    assert await cache.latest_bar("EURUSD", "1d") == daily
    assert await cache.latest_bar("GBPUSD", Timeframe.H1) is None


async def test_delete_removes_a_key(cache: InProcessCache) -> None:
    await cache.set_json("key", 1, 10)

    await cache.delete("key")

    assert await cache.get_json("key") is None


@pytest.mark.parametrize("ttl", [0, -1.5])
async def test_non_positive_ttl_is_refused(cache: InProcessCache, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        await cache.set_json("key", 1, ttl)
