"""Hot state caches: Redis for services, an in-process dict for the embedded mode.

Both hold JSON values with a time to live and count hits and misses, behind one interface.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from redis.asyncio import Redis

from tai_core.clock import Clock
from tai_events import BarClosed, Timeframe


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Reads answered from the cache (hits) and not (misses)."""

    hits: int
    misses: int

    @property
    def hit_ratio(self) -> float:
        """Return hits / reads, or 0.0 before the first read."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0


def latest_bar_key(symbol: str, timeframe: Timeframe | str) -> str:
    """Return the cache key of a symbol's latest bar of one timeframe."""
    return f"bar:latest:{Timeframe(timeframe).value}:{symbol}"


def _check_ttl(ttl_seconds: float | None) -> None:
    if ttl_seconds is not None and ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive (or None for no expiry)")


class Cache(Protocol):
    """The cache interface both implementations share."""

    @property
    def stats(self) -> CacheStats:
        """Return the hit and miss counters."""
        ...

    async def set_json(self, key: str, value: Any, ttl_seconds: float | None) -> None:
        """Store a JSON-serialisable value, expiring after ``ttl_seconds`` (None: never)."""
        ...

    async def get_json(self, key: str) -> Any | None:
        """Return the value, or None when absent or expired."""
        ...

    async def delete(self, key: str) -> None:
        """Remove a key."""
        ...

    async def set_latest_bar(self, bar: BarClosed, ttl_seconds: float | None) -> None:
        """Remember ``bar`` as its symbol's latest bar of its timeframe."""
        ...

    async def latest_bar(self, symbol: str, timeframe: Timeframe | str) -> BarClosed | None:
        """Return the latest cached bar, or None."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class _Counters:
    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def count(self, found: bool) -> None:
        if found:
            self.hits += 1
        else:
            self.misses += 1

    @property
    def stats(self) -> CacheStats:
        return CacheStats(hits=self.hits, misses=self.misses)


class RedisCache:
    """A cache in Redis; keys are namespaced by ``prefix`` and expire server-side."""

    def __init__(self, url: str, *, prefix: str = "tai:") -> None:
        self._redis: Redis = Redis.from_url(url)
        self._prefix = prefix
        self._counters = _Counters()

    @property
    def stats(self) -> CacheStats:
        """Return the hit and miss counters of this client."""
        return self._counters.stats

    @property
    def prefix(self) -> str:
        """Return the key namespace."""
        return self._prefix

    async def set_json(self, key: str, value: Any, ttl_seconds: float | None) -> None:
        """Store a JSON-serialisable value, expiring after ``ttl_seconds`` (None: never)."""
        _check_ttl(ttl_seconds)
        payload = json.dumps(value, separators=(",", ":"))
        expiry = None if ttl_seconds is None else max(1, round(ttl_seconds * 1000))
        await self._redis.set(self._prefix + key, payload, px=expiry)

    async def get_json(self, key: str) -> Any | None:
        """Return the value, or None when absent or expired."""
        payload = await self._redis.get(self._prefix + key)
        self._counters.count(payload is not None)
        return None if payload is None else json.loads(payload)

    async def delete(self, key: str) -> None:
        """Remove a key."""
        await self._redis.delete(self._prefix + key)

    async def ttl_seconds(self, key: str) -> float | None:
        """Return the remaining time to live, or None if the key is absent or never expires."""
        remaining = int(await self._redis.pttl(self._prefix + key))
        return None if remaining < 0 else remaining / 1000

    async def clear(self) -> int:
        """Delete every key under this cache's prefix; return how many went."""
        deleted = 0
        async for key in self._redis.scan_iter(match=self._prefix + "*", count=500):
            deleted += int(await self._redis.delete(key))
        return deleted

    async def set_latest_bar(self, bar: BarClosed, ttl_seconds: float | None) -> None:
        """Remember ``bar`` as its symbol's latest bar of its timeframe."""
        await self.set_json(
            latest_bar_key(bar.symbol, bar.timeframe), bar.model_dump(mode="json"), ttl_seconds
        )

    async def latest_bar(self, symbol: str, timeframe: Timeframe | str) -> BarClosed | None:
        """Return the latest cached bar, or None."""
        value = await self.get_json(latest_bar_key(symbol, timeframe))
        return None if value is None else BarClosed.model_validate(value)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


class InProcessCache:
    """A dict-backed cache for the embedded mode; expiry follows the injected clock.

    Values are stored as JSON text, so callers get copies and the same types Redis would give.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[str, datetime | None]] = {}
        # Expiry times, soonest first; entries overwritten since are skipped when popped.
        self._expiries: list[tuple[datetime, str]] = []
        self._counters = _Counters()

    @property
    def stats(self) -> CacheStats:
        """Return the hit and miss counters."""
        return self._counters.stats

    def __len__(self) -> int:
        """Return the number of live entries."""
        self._evict_expired()
        return len(self._entries)

    async def set_json(self, key: str, value: Any, ttl_seconds: float | None) -> None:
        """Store a JSON-serialisable value, expiring after ``ttl_seconds`` (None: never)."""
        _check_ttl(ttl_seconds)
        payload = json.dumps(value, separators=(",", ":"))
        expires_at = (
            None if ttl_seconds is None else self._clock.now() + timedelta(seconds=ttl_seconds)
        )
        self._entries[key] = (payload, expires_at)
        if expires_at is not None:
            heapq.heappush(self._expiries, (expires_at, key))
        self._evict_expired()

    async def get_json(self, key: str) -> Any | None:
        """Return the value, or None when absent or expired."""
        entry = self._entries.get(key)
        if entry is not None and self._expired(entry[1]):
            del self._entries[key]
            entry = None
        self._counters.count(entry is not None)
        return None if entry is None else json.loads(entry[0])

    async def delete(self, key: str) -> None:
        """Remove a key."""
        self._entries.pop(key, None)

    async def set_latest_bar(self, bar: BarClosed, ttl_seconds: float | None) -> None:
        """Remember ``bar`` as its symbol's latest bar of its timeframe."""
        await self.set_json(
            latest_bar_key(bar.symbol, bar.timeframe), bar.model_dump(mode="json"), ttl_seconds
        )

    async def latest_bar(self, symbol: str, timeframe: Timeframe | str) -> BarClosed | None:
        """Return the latest cached bar, or None."""
        value = await self.get_json(latest_bar_key(symbol, timeframe))
        return None if value is None else BarClosed.model_validate(value)

    async def close(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self._expiries.clear()

    def _expired(self, expires_at: datetime | None) -> bool:
        return expires_at is not None and self._clock.now() >= expires_at

    def _evict_expired(self) -> None:
        now = self._clock.now()
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, key = heapq.heappop(self._expiries)
            entry = self._entries.get(key)
            if entry is not None and entry[1] == expires_at:
                del self._entries[key]
