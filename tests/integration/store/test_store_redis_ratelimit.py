"""Allowances in the real Redis: two processes on one key draw on one sliding window."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from tai_core.clock import SystemClock
from tai_store.ratelimit import InProcessRateLimiter, RedisRateLimiter, acquire

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def limiters() -> AsyncIterator[tuple[RedisRateLimiter, RedisRateLimiter]]:
    # Two clients, as ingestion and execution would hold; a prefix of their own per test.
    prefix = f"tai-test:{uuid.uuid4().hex}:"
    first = RedisRateLimiter(REDIS_URL, prefix=prefix, fallback=InProcessRateLimiter(SystemClock()))
    second = RedisRateLimiter(
        REDIS_URL, prefix=prefix, fallback=InProcessRateLimiter(SystemClock())
    )
    yield first, second
    await first.close()
    await second.close()


async def test_two_clients_on_one_key_share_one_allowance(
    limiters: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    # Arrange
    first, second = limiters
    # Act: three each, against an allowance of four per minute
    waits = [
        await limiter.try_acquire("ig:account-ABC123:non-trading", 4, 60.0)
        for limiter in (first, second, first, second, first, second)
    ]
    # Assert: the fifth and sixth wait (nearly) the whole minute; nothing fell back in-process
    assert waits[:4] == [0.0] * 4
    assert all(55.0 < wait <= 60.0 for wait in waits[4:])
    assert first.redis_failures == second.redis_failures == 0


async def test_other_keys_have_their_own_allowance(
    limiters: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    first, second = limiters
    assert await first.try_acquire("ig:account-A:trading", 1, 60.0) == 0.0
    assert await second.try_acquire("ig:account-B:trading", 1, 60.0) == 0.0
    assert await second.try_acquire("ig:account-A:trading", 1, 60.0) > 0


async def test_acquire_waits_for_the_window_to_free_a_slot(
    limiters: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    # Arrange
    first, second = limiters
    await first.try_acquire("short", 1, 0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    # Act
    await acquire(second, "short", 1, 0.2)
    # Assert
    assert loop.time() - started >= 0.1


async def test_unreachable_redis_falls_back_to_counting_in_process() -> None:
    # Arrange
    limiter = RedisRateLimiter(
        "redis://127.0.0.1:1/0", fallback=InProcessRateLimiter(SystemClock())
    )
    # Act
    waits = [await limiter.try_acquire("ig:key", 1, 60.0) for _ in range(2)]
    # Assert
    assert waits[0] == 0.0
    assert waits[1] > 0
    assert limiter.redis_failures == 2
    await limiter.close()
