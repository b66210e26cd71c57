"""The token-bucket rate limiter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from gateway_support import T0

from tai_core.clock import FakeClock
from tai_gateway.ratelimit import TokenBucketLimiter


def test_burst_up_to_capacity_is_allowed_then_refused() -> None:
    limiter = TokenBucketLimiter(capacity=3, period_seconds=60, clock=FakeClock(T0))
    decisions = [limiter.allow("user:alice") for _ in range(4)]
    assert [decision.allowed for decision in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after_seconds == pytest.approx(20.0)


def test_bucket_refills_with_time() -> None:
    clock = FakeClock(T0)
    limiter = TokenBucketLimiter(capacity=2, period_seconds=60, clock=clock)
    limiter.allow("ip:10.0.0.1")
    limiter.allow("ip:10.0.0.1")
    assert not limiter.allow("ip:10.0.0.1").allowed
    clock.advance(timedelta(seconds=30))
    assert limiter.allow("ip:10.0.0.1").allowed
    assert not limiter.allow("ip:10.0.0.1").allowed


def test_keys_have_separate_buckets() -> None:
    limiter = TokenBucketLimiter(capacity=1, period_seconds=60, clock=FakeClock(T0))
    assert limiter.allow("user:alice").allowed
    assert not limiter.allow("user:alice").allowed
    assert limiter.allow("user:victor").allowed


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        TokenBucketLimiter(capacity=0, period_seconds=60, clock=FakeClock(T0))
