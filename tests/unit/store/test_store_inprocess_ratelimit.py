"""The in-process allowance window on an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tai_core.clock import FakeClock
from tai_store.ratelimit import InProcessRateLimiter, acquire, create_rate_limiter

T0 = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)


async def test_window_admits_the_limit_then_says_how_long_to_wait() -> None:
    # Arrange
    clock = FakeClock(T0)
    limiter = InProcessRateLimiter(clock)
    # Act
    first = [await limiter.try_acquire("key", 2, 60.0) for _ in range(2)]
    clock.advance(timedelta(seconds=10))
    refused = await limiter.try_acquire("key", 2, 60.0)
    clock.advance(timedelta(seconds=50))
    admitted = await limiter.try_acquire("key", 2, 60.0)
    # Assert
    assert first == [0.0, 0.0]
    assert refused == pytest.approx(50.0)
    assert admitted == 0.0


async def test_acquire_sleeps_until_the_window_frees_a_slot() -> None:
    # Arrange
    clock = FakeClock(T0)
    limiter = InProcessRateLimiter(clock)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(timedelta(seconds=seconds))

    # Act
    for _ in range(3):
        await acquire(limiter, "key", 2, 60.0, sleep=sleep)
    # Assert
    assert slept == [60.0]


def test_no_redis_url_gives_an_in_process_limiter() -> None:
    assert isinstance(create_rate_limiter("", FakeClock(T0)), InProcessRateLimiter)


async def test_a_bad_allowance_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        await InProcessRateLimiter(FakeClock(T0)).try_acquire("key", 0, 60.0)
