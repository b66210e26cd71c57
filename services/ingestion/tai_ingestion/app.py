"""Composition root of the ingestion service: the only way market data enters the system."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from tai_bus.api import MessageBus, Subscription
from tai_core.clock import Clock
from tai_events.market import BarClosed
from tai_ingestion.calendar import align, calendar_for
from tai_ingestion.config import IngestionSettings
from tai_ingestion.factory import build_sources
from tai_ingestion.failover import FailoverSource
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.pipeline import BarPipeline, BarPoller
from tai_ingestion.replay import ReplayData, load_bars
from tai_ingestion.validation import Validator
from tai_store.database import Store
from tai_telemetry.logging import get_logger
from tai_telemetry.metrics import Telemetry

AfterBar = Callable[[BarClosed], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay did."""

    published: int
    rejected_by_rule: dict[str, int]


class IngestionApp:
    """Replays a file, or polls the sources on each bar close; stores, then publishes bars."""

    name = "ingestion"

    def __init__(
        self,
        settings: IngestionSettings,
        *,
        bus: MessageBus,
        store: Store,
        clock: Clock,
        telemetry: Telemetry,
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
        self.validator = Validator(settings.validation, calendar=calendar, metrics=self.metrics)
        self._poll_task: asyncio.Task[None] | None = None

    def subscriptions(self) -> list[Subscription]:
        """Ingestion consumes nothing in replay mode."""
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
        """Publish every bar in order, paced by replay_speed; call after_bar after each."""
        interval = 1.0 / self.settings.replay_speed if self.settings.replay_speed > 0 else 0.0
        total = len(data.bars)
        for index, bar in enumerate(data.bars, start=1):
            async with self.store.transaction() as unit:
                await unit.ohlcv.upsert_many([bar])
            await self.bus.publish(bar)
            self.metrics.record_published(bar)
            if after_bar is not None:
                await after_bar(bar)
            if progress is not None:
                progress(index, total)
            if interval:
                await asyncio.sleep(interval)
        self.log.info("replay finished", published=total, rejected=data.rejected_by_rule())
        return ReplayReport(published=total, rejected_by_rule=data.rejected_by_rule())

    async def start(self) -> None:
        """Start replaying the configured file, or polling the sources, in the background."""
        self._started = True
        if self.settings.replay_file is not None:
            self._task = asyncio.create_task(self._replay_then_signal(), name="replay")
        elif self.settings.poll_enabled:
            self._poll_task = asyncio.create_task(self._poll_on_bar_close(), name="poll")

    def create_poller(self) -> BarPoller:
        """Build the poller of the configured symbol over the configured sources."""
        sources = build_sources(self.settings, self.instruments, self.clock, self.metrics)
        failover = FailoverSource(
            sources,
            validator=self.validator,
            bus=self.bus,
            clock=self.clock,
            metrics=self.metrics,
            cooldown=timedelta(seconds=self.settings.failover_cooldown_seconds),
            max_rejected_fraction=self.settings.max_rejected_fraction,
        )
        pipeline = BarPipeline(
            store=self.store,
            bus=self.bus,
            cache=None,
            metrics=self.metrics,
            bar_ttl_seconds=self.settings.bar_cache_ttl_seconds,
            quote_ttl_seconds=self.settings.quote_cache_ttl_seconds,
        )
        return BarPoller(
            failover,
            pipeline,
            symbol=self.settings.symbol,
            timeframe=self.settings.timeframe,
            clock=self.clock,
        )

    async def _poll_on_bar_close(self) -> None:
        # A timer, not a polling loop: wake once per bar close of the configured timeframe.
        poller = self.create_poller()
        timeframe = self.settings.timeframe
        while True:
            now = self.clock.now()
            next_close = align(now, timeframe) + timeframe.duration
            await asyncio.sleep((next_close - now).total_seconds())
            try:
                await poller.on_timer(self.clock.now())
            except Exception as error:
                self.log.error("poll failed", error=str(error))

    async def _replay_then_signal(self) -> None:
        try:
            await self.replay(self.load())
        finally:
            self.done.set()

    async def stop(self) -> None:
        """Stop a replay in progress."""
        for task in (getattr(self, "_task", None), self._poll_task):
            if task is not None and not task.done():
                task.cancel()
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
) -> IngestionApp:
    """Build the ingestion service from its settings and injected infrastructure."""
    return IngestionApp(settings, bus=bus, store=store, clock=clock, telemetry=telemetry)
