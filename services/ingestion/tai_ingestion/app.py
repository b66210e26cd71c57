"""Composition root of the ingestion service: the only way market data enters the system."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from tai_bus.api import MessageBus, Subscription
from tai_core.clock import Clock
from tai_events.market import BarClosed
from tai_ingestion.bars import BarAggregator
from tai_ingestion.calendar import calendar_for
from tai_ingestion.config import IngestionSettings
from tai_ingestion.factory import Connectors, Sources, build_sources
from tai_ingestion.failover import FailoverSource
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.live import LivePoller, Sleep, StreamFeed
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.pipeline import BarPipeline, BarPoller
from tai_ingestion.replay import ReplayData, load_bars
from tai_ingestion.validation import Validator
from tai_store.cache import Cache, RedisCache
from tai_store.database import Store
from tai_telemetry.logging import get_logger
from tai_telemetry.metrics import Telemetry

AfterBar = Callable[[BarClosed], Awaitable[None]]
REPLAY_BATCH_BARS = 256
"""Most bars a replay stores in one transaction when it runs behind its pace."""


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay did."""

    published: int
    rejected_by_rule: dict[str, int]


class IngestionApp:
    """Replays a file, streams live ticks into bars, or polls the sources at each bar close.

    Bars are stored, cached, then published, each once. The app owns the HTTP clients of
    the sources and the Redis cache it opens, and closes them on ``stop``.
    """

    name = "ingestion"

    def __init__(
        self,
        settings: IngestionSettings,
        *,
        bus: MessageBus,
        store: Store,
        clock: Clock,
        telemetry: Telemetry,
        cache: Cache | None = None,
        connectors: Connectors | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.store = store
        self.clock = clock
        self.telemetry = telemetry
        self.log = get_logger("ingestion")
        self._started = False
        self.done = asyncio.Event()
        self.metrics = IngestionMetrics.create(telemetry.registry)
        self.instruments = InstrumentMap.with_overrides(settings.instruments)
        calendar = (
            calendar_for(self.instruments.get(settings.symbol))
            if settings.symbol in self.instruments
            else None
        )
        self.calendar = calendar
        self.validator = Validator(settings.validation, calendar=calendar, metrics=self.metrics)
        self.cache: Cache | None = cache
        self.sources: Sources | None = None
        self._owned_cache: RedisCache | None = None
        self._connectors = connectors
        self._sleep = sleep
        self._pipeline: BarPipeline | None = None
        self._task: asyncio.Task[None] | None = None
        self._live_task: asyncio.Task[None] | None = None

    def subscriptions(self) -> list[Subscription]:
        """Ingestion consumes nothing: it is the way market data enters."""
        return []

    def load(self) -> ReplayData:
        """Load and validate the configured replay file."""
        if self.settings.replay_file is None:
            raise ValueError("INGESTION_REPLAY_FILE is not set")
        data = load_bars(
            self.settings.replay_file,
            symbol=self.settings.symbol,
            timeframe=self.settings.timeframe,
            start=self.settings.replay_start,
            validator=self.validator,
        )
        for rejection in data.rejections:
            self.log.warning(
                "row rejected",
                row=rejection.row,
                timestamp=rejection.timestamp,
                rule=rejection.rule,
                reason=rejection.reason,
            )
        return data

    async def replay(
        self,
        data: ReplayData,
        *,
        after_bar: AfterBar | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReplayReport:
        """Publish every bar in order, paced by replay_speed; call after_bar after each.

        Bar i goes out no earlier than i / replay_speed seconds after the start. The bars that
        are due are stored in one transaction before any of them is published (a replay that
        runs behind its pace, or at full speed, stores in batches of REPLAY_BATCH_BARS).
        """
        interval = 1.0 / self.settings.replay_speed if self.settings.replay_speed > 0 else 0.0
        bars = data.bars
        # the higher timeframes, built from the replayed bars as live bars are built
        aggregators = [
            BarAggregator(bars[0].symbol, timeframe, source=bars[0].source)
            for timeframe in self.settings.live_timeframes
            if bars and timeframe.duration > bars[0].timeframe.duration
        ]
        total = len(bars)
        loop = asyncio.get_running_loop()
        started = loop.time()
        index = 0
        while index < total:
            if interval:
                due = int((loop.time() - started) / interval) + 1
                if due <= index:
                    await asyncio.sleep(started + index * interval - loop.time())
                    continue
            else:
                due = total
            batch = bars[index : min(due, total, index + REPLAY_BATCH_BARS)]
            await self.store.store_bars(batch)
            for bar in batch:
                await self.bus.publish(bar)
                self.metrics.record_published(bar)
                completed = [higher for agg in aggregators for higher in agg.on_bar(bar)]
                if completed:
                    # after the bar that completed them: one queue sees both in this order
                    await self.store.store_bars(completed)
                    for higher in completed:
                        await self.bus.publish(higher)
                        self.metrics.record_published(higher)
                index += 1
                if after_bar is not None:
                    await after_bar(bar)
                if progress is not None:
                    progress(index, total)
        self.log.info("replay finished", published=total, rejected=data.rejected_by_rule())
        return ReplayReport(published=total, rejected_by_rule=data.rejected_by_rule())

    async def start(self) -> None:
        """Start replaying the file, streaming, or polling the sources, in the background."""
        self._started = True
        if self.settings.replay_file is not None:
            self._task = asyncio.create_task(self._replay_then_signal(), name="replay")
        elif self.settings.stream_enabled:
            self._live_task = asyncio.create_task(self.create_stream_feed().run(), name="stream")
        elif self.settings.poll_enabled:
            poller = self.create_live_poller()
            if poller is None:
                raise ValueError("INGESTION_POLL_ENABLED is set but no source is usable")
            self._live_task = asyncio.create_task(poller.run(), name="poll")

    def open_sources(self) -> Sources:
        """Return the configured sources, building them once; ``stop`` closes their clients."""
        if self.sources is None:
            self.sources = build_sources(
                self.settings, self.instruments, self.clock, self.metrics, self._connectors
            )
        return self.sources

    def open_cache(self) -> Cache | None:
        """Return the cache of latest bars and quotes: the injected one, else Redis if set."""
        if self.cache is None and self.settings.redis_url:
            self.cache = self._owned_cache = RedisCache(
                self.settings.redis_url, prefix=self.settings.cache_prefix
            )
        return self.cache

    def create_pipeline(self) -> BarPipeline:
        """Return the one pipeline live bars go through (store, cache, publish, once each)."""
        if self._pipeline is None:
            self._pipeline = BarPipeline(
                store=self.store,
                bus=self.bus,
                cache=self.open_cache(),
                metrics=self.metrics,
                bar_ttl_seconds=self.settings.bar_cache_ttl_seconds,
                quote_ttl_seconds=self.settings.quote_cache_ttl_seconds,
            )
        return self._pipeline

    def create_failover(self) -> FailoverSource | None:
        """Return the polling sources behind failover, or None when none is usable."""
        sources = self.open_sources().polling
        if not sources:
            return None
        return FailoverSource(
            sources,
            validator=self.validator,
            bus=self.bus,
            clock=self.clock,
            metrics=self.metrics,
            instruments=self.instruments,
            cooldown=timedelta(seconds=self.settings.failover_cooldown_seconds),
            max_rejected_fraction=self.settings.max_rejected_fraction,
        )

    def create_poller(self) -> BarPoller:
        """Build the poller of the configured symbol and timeframe over the configured sources."""
        failover = self.create_failover()
        if failover is None:
            raise ValueError("no usable source (check INGESTION_SOURCES and credentials)")
        return BarPoller(
            failover,
            self.create_pipeline(),
            symbol=self.settings.symbol,
            timeframe=self.settings.timeframe,
            clock=self.clock,
        )

    def create_live_poller(self) -> LivePoller | None:
        """Build the poller of every live timeframe, or None when no source is usable."""
        failover = self.create_failover()
        if failover is None:
            return None
        return LivePoller(
            failover,
            self.create_pipeline(),
            symbol=self.settings.symbol,
            timeframes=self.settings.live_timeframes,
            clock=self.clock,
            sleep=self._sleep,
        )

    def create_stream_feed(self) -> StreamFeed:
        """Build the live tick stream feed, with the polling sources as its fallback."""
        open_stream = self.open_sources().open_stream
        if open_stream is None:
            raise ValueError("INGESTION_STREAM_ENABLED needs the IG credentials")
        fallback = self.create_live_poller()
        if fallback is None:
            self.log.warning("no polling source: nothing covers while the stream is down")
        settings = self.settings
        return StreamFeed(
            open_stream,
            self.create_pipeline(),
            symbol=settings.symbol,
            timeframes=settings.live_timeframes,
            fallback=fallback,
            bus=self.bus,
            clock=self.clock,
            metrics=self.metrics,
            calendar=self.calendar,
            sleep=self._sleep,
            grace=timedelta(seconds=settings.late_tick_grace_seconds),
            publish_ticks=settings.publish_ticks,
            retry=timedelta(seconds=settings.stream_retry_seconds),
            max_retry=timedelta(seconds=settings.stream_max_retry_seconds),
            idle_timeout=timedelta(seconds=settings.stream_idle_timeout_seconds),
        )

    async def _replay_then_signal(self) -> None:
        try:
            await self.replay(self.load())
        finally:
            self.done.set()

    async def stop(self) -> None:
        """Stop the work in progress, then close the clients and cache the app opened."""
        tasks = [task for task in (self._task, self._live_task) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = self._live_task = None
        if self.sources is not None:
            await self.sources.aclose()
            self.sources = None
        if self._owned_cache is not None:
            await self._owned_cache.close()
            self.cache = self._owned_cache = None
        self._pipeline = None
        self._started = False

    def ready(self) -> bool:
        """Return True once started."""
        return self._started


def create_app(
    settings: IngestionSettings,
    *,
    bus: MessageBus,
    store: Store,
    clock: Clock,
    telemetry: Telemetry,
    cache: Cache | None = None,
    connectors: Connectors | None = None,
    sleep: Sleep = asyncio.sleep,
) -> IngestionApp:
    """Build the ingestion service from its settings and injected infrastructure.

    ``cache`` replaces the Redis cache (the caller closes it); ``connectors`` are the seams
    through which sources reach the network; ``sleep`` is the timer the live loops wait on.
    """
    return IngestionApp(
        settings,
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
        cache=cache,
        connectors=connectors,
        sleep=sleep,
    )
