"""Composition root of the optimizer service: the model lifecycle between two nightly jobs."""

from __future__ import annotations

from tai_bus.api import Binding, MessageBus, Subscription
from tai_core.clock import Clock
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.topics import ALL_RETRAINING_REQUESTS, queue_name
from tai_optimizer.config import OptimizerSettings
from tai_optimizer.handlers import (
    OptimizerContext,
    on_bar_closed,
    on_retraining_requested,
    refresh_due,
)
from tai_store.database import Store
from tai_telemetry.metrics import Telemetry

RETRAINING_QUEUE = queue_name("optimizer", "retraining")
BARS_QUEUE = queue_name("optimizer", "bars")


class OptimizerApp:
    """Retrains models on ``model.retraining.*``; concludes their shadows as bars close."""

    name = "optimizer"

    def __init__(
        self,
        settings: OptimizerSettings,
        *,
        bus: MessageBus,
        store: Store,
        clock: Clock,
        telemetry: Telemetry,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.context = OptimizerContext(settings=settings, store=store, bus=bus, clock=clock)
        self._started = False

    def subscriptions(self) -> list[Subscription]:
        """Return the queues this service consumes."""
        return [
            Subscription(
                queue=RETRAINING_QUEUE,
                bindings=[Binding(ALL_RETRAINING_REQUESTS)],
                handler=self._on_retraining_requested,
                single_active_consumer=True,
            ),
            Subscription(
                queue=BARS_QUEUE,
                bindings=[Binding(f"market.bar.{self.settings.timeframe.value}.*")],
                handler=self._on_bar,
                single_active_consumer=True,
            ),
        ]

    async def _on_retraining_requested(self, envelope: Envelope[Message]) -> None:
        await on_retraining_requested(envelope, self.context)

    async def _on_bar(self, envelope: Envelope[Message]) -> None:
        await on_bar_closed(envelope, self.context)

    async def start(self) -> None:
        """Load the open shadow periods, then consume."""
        await refresh_due(self.context)
        for subscription in self.subscriptions():
            await self.context.bus.subscribe(subscription)
        self._started = True

    async def stop(self) -> None:
        """Nothing to release beyond the bus and the store, which the runtime closes."""
        self._started = False

    def ready(self) -> bool:
        """Return True once consuming."""
        return self._started


def create_app(
    settings: OptimizerSettings,
    *,
    bus: MessageBus,
    store: Store,
    clock: Clock,
    telemetry: Telemetry,
) -> OptimizerApp:
    """Build the optimizer service from its settings and injected infrastructure."""
    return OptimizerApp(settings, bus=bus, store=store, clock=clock, telemetry=telemetry)
