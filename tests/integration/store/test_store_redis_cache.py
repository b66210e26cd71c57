"""RedisCache on the real Redis: JSON values, TTL, latest bars, counters, prefix clean-up."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from tai_events import BarClosed, Timeframe
from tai_store import CacheStats, RedisCache

pytestmark = pytest.mark.integration


@pytest.fixture
async def cache() -> AsyncIterator[RedisCache]:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    redis_cache = RedisCache(url, prefix=f"tai-test:{uuid.uuid4().hex}:")
    yield redis_cache
    await redis_cache.clear()
    await redis_cache.close()


async def test_json_value_round_trips_with_its_ttl(cache: RedisCache) -> None:
    await cache.set_json("risk:snapshot", {"equity": 100.5, "open": ["EURUSD"]}, 30)

    value = await cache.get_json("risk:snapshot")
    remaining = await cache.ttl_seconds("risk:snapshot")

    assert value == {"equity": 100.5, "open": ["EURUSD"]}
    assert remaining is not None
    assert 0 < remaining <= 30


async def test_value_disappears_after_its_ttl(cache: RedisCache) -> None:
    await cache.set_json("short", 1, 0.05)

    for _ in range(500):
        if await cache.get_json("short") is None:
            break
        await asyncio.sleep(0.01)

    assert await cache.get_json("short") is None


async def test_value_without_ttl_does_not_expire(cache: RedisCache) -> None:
    await cache.set_json("config", [1, 2], None)

    assert await cache.ttl_seconds("config") is None
    assert await cache.get_json("config") == [1, 2]


async def test_hits_and_misses_are_counted(cache: RedisCache) -> None:
    await cache.set_json("present", True, 10)

    await cache.get_json("present")
    await cache.get_json("absent")
    await cache.get_json("absent")

    assert cache.stats == CacheStats(hits=1, misses=2)


async def test_latest_bar_round_trips(
    cache: RedisCache, make_bar: Callable[..., BarClosed]
) -> None:
    bar = make_bar()

    await cache.set_latest_bar(bar, 3600)

    assert await cache.latest_bar("EURUSD", Timeframe.H1) == bar
    assert await cache.latest_bar("EURUSD", Timeframe.D1) is None


async def test_clear_removes_only_this_prefix(cache: RedisCache) -> None:
    neighbour = RedisCache(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        prefix=f"tai-test:{uuid.uuid4().hex}:",
    )
    try:
        await cache.set_json("a", 1, 60)
        await cache.set_json("b", 2, 60)
        await neighbour.set_json("a", 3, 60)

        deleted = await cache.clear()

        assert deleted == 2
        assert await cache.get_json("a") is None
        assert await neighbour.get_json("a") == 3
    finally:
        await neighbour.clear()
        await neighbour.close()
