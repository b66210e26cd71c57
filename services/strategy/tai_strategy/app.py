"""Composition root of the strategy service."""

from __future__ import annotations

from tai_bus.api import Binding, MessageBus, Subscription
from tai_core.clock import Clock
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.market import BarClosed
from tai_events.topics import ALL_PREDICTIONS, CONTROL_EXCHANGE, CONTROL_STRATEGY, queue_name
from tai_store.database import Store
from tai_strategy.book import StrategyBook
from tai_strategy.config import StrategySettings
from tai_strategy.handlers import (
    StrategyContext,
    on_bar_closed,
    on_configure_strategy,
    on_prediction_made,
)
from tai_telemetry.metrics import Telemetry

BARS_QUEUE = queue_name("strategy", "bars")
PREDICTIONS_QUEUE = queue_name("strategy", "predictions")
CONTROL_QUEUE = queue_name("strategy", "control")


class StrategyApp:
    """The strategy service: consumes bars (and predictions) in order, publishes order requests.

    Which strategies run comes from the settings (sma_cross alone by default); ConfigureStrategy
    commands on the control exchange switch and re-parameterise them at run time.
    """

    name = "strategy"

    def __init__(
        self,
        settings: StrategySettings,
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
        book = StrategyBook.from_names(
            settings.strategies,
            settings.strategy_parameters(),
            settings.regime_weights or None,
            history_bars=settings.history_bars,
        )
        self.book = book
        self.context = StrategyContext(book=book, bus=bus, clock=clock)
        self._warmed_up: set[str] = set()
        self._started = False

    def subscriptions(self) -> list[Subscription]:
        """Return the queues this service consumes."""
        subscriptions = [
            Subscription(
                queue=BARS_QUEUE,
                bindings=[Binding(f"market.bar.{self.settings.timeframe.value}.*")],
                handler=self._on_bar,
                single_active_consumer=True,
            ),
            Subscription(
                queue=CONTROL_QUEUE,
                bindings=[Binding(CONTROL_STRATEGY, exchange=CONTROL_EXCHANGE)],
                handler=self._on_control,
                single_active_consumer=True,
            ),
        ]
        if self.book.consumes_predictions:
            subscriptions.append(
                Subscription(
                    queue=PREDICTIONS_QUEUE,
                    bindings=[Binding(ALL_PREDICTIONS)],
                    handler=self._on_prediction,
                    single_active_consumer=True,
                )
            )
        return subscriptions

    async def _on_bar(self, envelope: Envelope[Message]) -> None:
        bar = envelope.message
        if isinstance(bar, BarClosed) and bar.symbol not in self._warmed_up:
            await self._warm_up(bar)
        await on_bar_closed(envelope, self.context)

    async def _on_prediction(self, envelope: Envelope[Message]) -> None:
        await on_prediction_made(envelope, self.context)

    async def _on_control(self, envelope: Envelope[Message]) -> None:
        await on_configure_strategy(envelope, self.context)

    async def _warm_up(self, first: BarClosed) -> None:
        """Rebuild indicator state from stored history strictly before the first live bar."""
        async with self.store.transaction() as unit:
            history = await unit.ohlcv.range(
                first.symbol, first.timeframe.value, end=first.opened_at
            )
        bars = [bar.to_event() for bar in history if bar.opened_at < first.opened_at]
        if self.settings.warm_up_bars:
            bars = bars[-self.settings.warm_up_bars :]
        for bar in bars:
            self.book.warm_up(bar)
        self._warmed_up.add(first.symbol)

    async def start(self) -> None:
        """Subscribe to the bar stream."""
        for subscription in self.subscriptions():
            await self.bus.subscribe(subscription)
        self._started = True

    async def stop(self) -> None:
        """Nothing to release beyond the bus, which the runtime closes."""
        self._started = False

    def ready(self) -> bool:
        """Return True once consuming."""
        return self._started


def create_app(
    settings: StrategySettings,
    *,
    bus: MessageBus,
    store: Store,
    clock: Clock,
    telemetry: Telemetry,
) -> StrategyApp:
    """Build the strategy service from its settings and injected infrastructure."""
    return StrategyApp(settings, bus=bus, store=store, clock=clock, telemetry=telemetry)
