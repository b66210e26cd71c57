"""Where validated bars go: stored (idempotent upsert), cached, then published, exactly once.

The pipeline keeps, per symbol and timeframe, the newest bar it has published (its
high-water mark, recovered from the cache or the store on first use), so a bar that two
sources both deliver, or one source delivers twice, is published once. The cache is best
effort: when it fails, the failure is logged and counted and the bar still goes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_events.market import BarClosed, TickReceived, Timeframe
from tai_ingestion.failover import FailoverSource
from tai_ingestion.metrics import IngestionMetrics
from tai_store.cache import Cache
from tai_store.database import Store
from tai_telemetry.logging import get_logger


def quote_key(symbol: str) -> str:
    """Return the cache key of a symbol's latest quote."""
    return f"quote:latest:{symbol}"


class BarPipeline:
    """Store, cache and publish bars in time order, never the same bar twice."""

    def __init__(
        self,
        *,
        store: Store,
        bus: MessageBus,
        cache: Cache | None,
        metrics: IngestionMetrics,
        bar_ttl_seconds: float = 86_400.0,
        quote_ttl_seconds: float = 60.0,
    ) -> None:
        self._store = store
        self._bus = bus
        self._cache = cache
        self._metrics = metrics
        self._bar_ttl = bar_ttl_seconds
        self._quote_ttl = quote_ttl_seconds
        self._last: dict[tuple[str, Timeframe], BarClosed | None] = {}
        self._log = get_logger("ingestion.pipeline")

    async def last_published(self, symbol: str, timeframe: Timeframe) -> BarClosed | None:
        """Return the newest bar published (from memory, else the cache, else the store)."""
        key = (symbol, timeframe)
        if key not in self._last:
            self._last[key] = await self._recover(symbol, timeframe)
        return self._last[key]

    async def _recover(self, symbol: str, timeframe: Timeframe) -> BarClosed | None:
        if self._cache is not None:
            try:
                cached = await self._cache.latest_bar(symbol, timeframe)
            except Exception as error:  # the store still knows; a cache outage must not stop data
                self._cache_failed("read", error)
            else:
                self._metrics.record_cache_read(
                    found=cached is not None, hit_ratio=self._cache.stats.hit_ratio
                )
                if cached is not None:
                    return cached
        async with self._store.transaction() as unit:
            stored = await unit.ohlcv.latest(symbol, timeframe)
        if not stored:
            return None
        row = stored[-1]
        return BarClosed(
            symbol=symbol,
            timeframe=timeframe,
            opened_at=row.opened_at,
            closed_at=row.opened_at + timeframe.duration,
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=row.volume,
            source=row.source,
        )

    async def publish(self, bars: Sequence[BarClosed]) -> list[BarClosed]:
        """Store, cache and publish the bars newer than the high-water mark; return those."""
        published: list[BarClosed] = []
        for bar in sorted(bars, key=lambda bar: (bar.opened_at, bar.timeframe.duration)):
            last = await self.last_published(bar.symbol, bar.timeframe)
            if last is not None and bar.opened_at <= last.opened_at:
                continue
            await self._store.store_bars([bar])
            if self._cache is not None:
                try:
                    await self._cache.set_latest_bar(bar, self._bar_ttl)
                except Exception as error:  # best effort: the bar is stored and still published
                    self._cache_failed("write", error)
            await self._bus.publish(bar)
            self._last[(bar.symbol, bar.timeframe)] = bar
            self._metrics.record_published(bar)
            published.append(bar)
        return published

    async def publish_tick(self, tick: TickReceived) -> None:
        """Cache a quote as its symbol's latest and publish it."""
        if self._cache is not None:
            try:
                await self._cache.set_json(
                    quote_key(tick.symbol), tick.model_dump(mode="json"), self._quote_ttl
                )
            except Exception as error:  # best effort: the quote is still published
                self._cache_failed("write", error)
        await self._bus.publish(tick)

    def _cache_failed(self, operation: str, error: Exception) -> None:
        self._metrics.cache_errors.labels(operation=operation).inc()
        self._log.warning("cache unavailable", operation=operation, error=repr(error))


class BarPoller:
    """On each timer event, fetch the bars closed since the last one published."""

    def __init__(
        self,
        source: FailoverSource,
        pipeline: BarPipeline,
        *,
        symbol: str,
        timeframe: Timeframe,
        clock: Clock,
        lookback_bars: int = 100,
    ) -> None:
        self._source = source
        self._pipeline = pipeline
        self.symbol = symbol
        self.timeframe = timeframe
        self._clock = clock
        self._lookback = lookback_bars

    async def on_timer(
        self, now: datetime | None = None, *, before: datetime | None = None
    ) -> list[BarClosed]:
        """Poll once (the clock's timer calls this at each bar close); return what was published.

        With ``before``, only bars opened before it are published (the rest come from elsewhere).
        """
        moment = now or self._clock.now()
        last = await self._pipeline.last_published(self.symbol, self.timeframe)
        since = (
            last.closed_at
            if last is not None
            else moment - self.timeframe.duration * self._lookback
        )
        sourced = await self._source.poll_recent(self.symbol, self.timeframe, last, since)
        bars = [bar for bar in sourced.bars if before is None or bar.opened_at < before]
        return await self._pipeline.publish(bars)
