"""Composition root of the ingestion service: the only way market data enters the system."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tai_bus.api import MessageBus, Subscription
from tai_core.clock import Clock
from tai_events.market import BarClosed
from tai_ingestion.config import IngestionSettings
from tai_ingestion.replay import ReplayData, load_bars
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
    """Replays bars: store each one (idempotent upsert), then publish it."""

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

    def subscriptions(self) -> list[Subscription]:
        """Ingestion consumes nothing in replay mode."""
        return []

    def load(self) -> ReplayData:
        """Load and validate the configured replay file."""
        if self.settings.replay_file is None:
            raise ValueError("INGESTION_REPLAY_FILE is not set")
        data = load_bars(
            self.settings.replay_file, symbol=self.settings.symbol, timeframe=self.settings.timeframe
        )
        for rejection in data.rejections:
            self.log.warning(
                "row rejected", row=rejection.row, timestamp=rejection.timestamp,
                rule=rejection.rule, reason=rejection.reason,
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
            if after_bar is not None:
                await after_bar(bar)
            if progress is not None:
                progress(index, total)
            if interval:
                await asyncio.sleep(interval)
        self.log.info("replay finished", published=total, rejected=data.rejected_by_rule())
        return ReplayReport(published=total, rejected_by_rule=data.rejected_by_rule())

    async def start(self) -> None:
        """Start replaying the configured file in the background (service mode)."""
        self._started = True
        if self.settings.replay_file is not None:
            self._task = asyncio.create_task(self._replay_then_signal(), name="replay")

    async def _replay_then_signal(self) -> None:
        try:
            await self.replay(self.load())
        finally:
            self.done.set()

    async def stop(self) -> None:
        """Stop a replay in progress."""
        task = getattr(self, "_task", None)
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
