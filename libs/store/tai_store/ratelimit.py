"""Request allowances shared by every process that spends them: Redis, or in-process.

A broker or data vendor counts requests per API key or account, however many of our
services use it (IG: ingestion and execution share one key). A sliding window per key name
admits at most ``limit`` requests per ``window_seconds``: in Redis (a sorted set of request
times, checked and updated atomically by one script on the server's clock) every service
using the same Redis and key name draws on one allowance; in-process it covers one process
(the embedded mode, or when no Redis is configured).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tai_core.clock import Clock

Sleep = Callable[[float], Awaitable[None]]

# KEYS[1]: the window; ARGV: limit, window (ms), a unique member. Returns 0 when the request
# is admitted (and recorded), else the milliseconds until the oldest request leaves the window.
_SLIDING_WINDOW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window_ms)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window_ms)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window_ms - now_ms)
"""


class RateLimiter(Protocol):
    """Sliding-window allowances by key name."""

    async def try_acquire(self, key: str, limit: int, window_seconds: float) -> float:
        """Take one request from ``key``'s allowance: 0.0 if taken, else seconds to wait."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def _check(limit: int, window_seconds: float) -> None:
    if limit < 1 or window_seconds <= 0:
        raise ValueError("an allowance needs a positive limit and window")


class InProcessRateLimiter:
    """Allowances counted in this process, on the injected clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._windows: dict[str, deque[datetime]] = {}

    async def try_acquire(self, key: str, limit: int, window_seconds: float) -> float:
        """Take one request from ``key``'s allowance: 0.0 if taken, else seconds to wait."""
        _check(limit, window_seconds)
        now = self._clock.now()
        window = timedelta(seconds=window_seconds)
        stamps = self._windows.setdefault(key, deque())
        while stamps and stamps[0] <= now - window:
            stamps.popleft()
        if len(stamps) >= limit:
            return max((stamps[0] + window - now).total_seconds(), 0.001)
        stamps.append(now)
        return 0.0

    async def close(self) -> None:
        """Forget every window."""
        self._windows.clear()


class RedisRateLimiter:
    """Allowances counted in Redis, shared by every process using the same key names.

    When Redis cannot be reached the request is counted in-process instead (and the outage
    logged by the caller's metrics): a Redis outage must not stop trading or market data,
    and the in-process window still keeps this process within the allowance.
    """

    def __init__(self, url: str, *, prefix: str = "tai:", fallback: InProcessRateLimiter) -> None:
        self._redis: Redis = Redis.from_url(url)
        self._prefix = prefix + "allowance:"
        self._script = self._redis.register_script(_SLIDING_WINDOW)
        self._fallback = fallback
        self.redis_failures = 0

    async def try_acquire(self, key: str, limit: int, window_seconds: float) -> float:
        """Take one request from ``key``'s allowance: 0.0 if taken, else seconds to wait."""
        _check(limit, window_seconds)
        try:
            waited_ms = await self._script(
                keys=[self._prefix + key],
                args=[limit, max(1, round(window_seconds * 1000)), uuid.uuid4().hex],
            )
        except (RedisError, OSError):
            self.redis_failures += 1
            return await self._fallback.try_acquire(key, limit, window_seconds)
        return int(waited_ms) / 1000

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


async def acquire(
    limiter: RateLimiter,
    key: str,
    limit: int,
    window_seconds: float,
    *,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Wait until ``key``'s allowance admits one more request, then take it."""
    while (wait := await limiter.try_acquire(key, limit, window_seconds)) > 0:
        await sleep(wait)


def create_rate_limiter(redis_url: str, clock: Clock, *, prefix: str = "tai:") -> RateLimiter:
    """Return a Redis-backed limiter when ``redis_url`` is set, else an in-process one."""
    local = InProcessRateLimiter(clock)
    if not redis_url:
        return local
    return RedisRateLimiter(redis_url, prefix=prefix, fallback=local)
