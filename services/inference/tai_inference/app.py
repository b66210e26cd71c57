"""Composition root of the inference service."""

from __future__ import annotations

from tai_bus.api import Binding, MessageBus, Subscription
from tai_core.clock import Clock
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.market import BarClosed
from tai_events.topics import MODEL_PROMOTED, queue_name
from tai_inference.config import InferenceSettings
from tai_inference.drift import DriftSettings
from tai_inference.engine import InferenceEngine, ServingState, SymbolStatus
from tai_inference.handlers import (
    InferenceContext,
    load_production_model,
    on_bar_closed,
    on_model_promoted,
    report_state,
    serve_model,
)
from tai_inference.metrics import InferenceMetrics
from tai_store.database import Store
from tai_telemetry.metrics import Telemetry

BARS_QUEUE = queue_name("inference", "bars")
MODELS_QUEUE = queue_name("inference", "models")


class InferenceApp:
    """The inference service: bars in order to predictions, hot-reloading promoted models."""

    name = "inference"

    def __init__(
        self,
        settings: InferenceSettings,
        *,
        bus: MessageBus,
        store: Store,
        clock: Clock,
        telemetry: Telemetry,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.store = store
        self.telemetry = telemetry
        engine = InferenceEngine(
            drift_settings=DriftSettings(
                window=settings.drift_window,
                check_every=settings.drift_check_every,
                psi_threshold=settings.psi_threshold,
                quality_window=settings.quality_window,
                quality_tolerance=settings.quality_tolerance,
            ),
            max_model_age=settings.max_model_age(),
        )
        self.context = InferenceContext(
            engine=engine,
            bus=bus,
            store=store,
            clock=clock,
            metrics=InferenceMetrics.create(telemetry.registry),
        )
        self._looked_up: set[str] = set()
        self._started = False

    @property
    def engine(self) -> InferenceEngine:
        """The pure inference engine."""
        return self.context.engine

    def subscriptions(self) -> list[Subscription]:
        """Return the queues this service consumes."""
        return [
            Subscription(
                queue=BARS_QUEUE,
                bindings=[Binding(f"market.bar.{self.settings.timeframe.value}.*")],
                handler=self._on_bar,
                single_active_consumer=True,
            ),
            Subscription(
                queue=MODELS_QUEUE,
                bindings=[Binding(MODEL_PROMOTED)],
                handler=self._on_model_promoted,
                single_active_consumer=True,
            ),
        ]

    async def _ensure_model(self, symbol: str) -> None:
        if symbol in self._looked_up:
            return
        self._looked_up.add(symbol)
        model = await load_production_model(self.context, symbol, self.settings.timeframe.value)
        if model is not None and self.engine.model(symbol) is None:
            serve_model(self.context, symbol, model)
        report_state(self.context, symbol)

    async def _on_bar(self, envelope: Envelope[Message]) -> None:
        bar = envelope.message
        if isinstance(bar, BarClosed):
            await self._ensure_model(bar.symbol)
            if self.engine.bars_seen(bar.symbol) == 0:
                await self._warm_up(bar)
        await on_bar_closed(envelope, self.context)

    async def _on_model_promoted(self, envelope: Envelope[Message]) -> None:
        await on_model_promoted(envelope, self.context)

    async def _warm_up(self, first: BarClosed) -> None:
        """Rebuild the features from stored history strictly before the first live bar."""
        if not self.settings.warm_up_bars:
            return
        async with self.store.transaction() as unit:
            # Twice the bars' span leaves room for weekends and holidays in the history.
            history = await unit.ohlcv.range(
                first.symbol,
                first.timeframe.value,
                start=first.opened_at - 2 * self.settings.warm_up_bars * first.timeframe.duration,
                end=first.opened_at,
            )
        bars = [bar.to_event() for bar in history if bar.opened_at < first.opened_at]
        for bar in bars[-self.settings.warm_up_bars :]:
            self.engine.warm_up(bar)

    async def start(self) -> None:
        """Load the production models of the configured symbols and subscribe."""
        for symbol in self.settings.symbols:
            await self._ensure_model(symbol)
        for subscription in self.subscriptions():
            await self.bus.subscribe(subscription)
        self._started = True

    async def stop(self) -> None:
        """Nothing to release beyond the bus, which the runtime closes."""
        self._started = False

    def status(self) -> list[SymbolStatus]:
        """Return the serving state of every configured or seen symbol."""
        symbols = sorted({*self.settings.symbols, *self.engine.symbols()})
        return [self.engine.status(symbol) for symbol in symbols]

    def ready(self) -> bool:
        """Return True once consuming with a usable model for every configured symbol.

        Without a model, or with one older than ``max_model_age_hours``, the service
        publishes nothing and says so here (and in the ``tai_inference_serving_state``
        metric); warming up still counts as ready.
        """
        unusable = (ServingState.NO_MODEL, ServingState.EXPIRED)
        return self._started and all(status.state not in unusable for status in self.status())


def create_app(
    settings: InferenceSettings,
    *,
    bus: MessageBus,
    store: Store,
    clock: Clock,
    telemetry: Telemetry,
) -> InferenceApp:
    """Build the inference service from its settings and injected infrastructure."""
    return InferenceApp(settings, bus=bus, store=store, clock=clock, telemetry=telemetry)
