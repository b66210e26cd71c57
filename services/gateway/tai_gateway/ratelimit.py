"""A token-bucket rate limiter keyed by user or client address."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tai_core.clock import Clock

MAXIMUM_TRACKED_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether a request may proceed and, if not, how many seconds until it may."""

    allowed: bool
    retry_after_seconds: float


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """Allow ``capacity`` requests in a burst, refilled at ``capacity`` per ``period_seconds``.

    Thread-safe: the API's synchronous endpoints run in a thread pool.
    """

    def __init__(self, capacity: int, period_seconds: float, clock: Clock) -> None:
        if capacity < 1 or period_seconds <= 0:
            raise ValueError("capacity must be >= 1 and period_seconds > 0")
        self._capacity = float(capacity)
        self._refill_per_second = capacity / period_seconds
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> RateDecision:
        """Take one token from the key's bucket if there is one."""
        now = self._clock.now().timestamp()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                self._forget_idle(now)
                bucket = self._buckets[key] = _Bucket(self._capacity, now)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._capacity, bucket.tokens + elapsed * self._refill_per_second)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return RateDecision(True, 0.0)
            return RateDecision(False, (1.0 - bucket.tokens) / self._refill_per_second)

    def _forget_idle(self, now: float) -> None:
        # Bound memory: a bucket that has refilled completely carries no state worth keeping.
        if len(self._buckets) < MAXIMUM_TRACKED_KEYS:
            return
        refill_time = self._capacity / self._refill_per_second
        idle = [key for key, bucket in self._buckets.items() if now - bucket.updated >= refill_time]
        for key in idle:
            del self._buckets[key]
        if len(self._buckets) >= MAXIMUM_TRACKED_KEYS:
            oldest = min(self._buckets, key=lambda key: self._buckets[key].updated)
            del self._buckets[oldest]
