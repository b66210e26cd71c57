"""Composition root of the strategy service."""

from __future__ import annotations

from tai_bus.api import Binding, MessageBus, Subscription
from tai_core.clock import Clock
from tai_core.periodic import PeriodicTask
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.market import BarClosed, Timeframe
from tai_events.orders import OrderState, Side
from tai_events.strategies import StrategyParametersUpdated
from tai_events.topics import (
    ALL_PREDICTIONS,
    CONTROL_EXCHANGE,
    CONTROL_STRATEGY,
    EXECUTION_FILL,
    ORDER_REJECTED,
    market_bars,
    queue_name,
)
from tai_store.database import Store
from tai_strategy.book import StrategyBook
from tai_strategy.config import StrategySettings
from tai_strategy.handlers import (
    PRODUCER,
    StrategyContext,
    on_bar_closed,
    on_configure_strategy,
    on_order_outcome,
    on_prediction_made,
)
from tai_strategy.positions import PositionBook
from tai_telemetry.metrics import Telemetry

BARS_QUEUE = queue_name("strategy", "bars")
PREDICTIONS_QUEUE = queue_name("strategy", "predictions")
CONTROL_QUEUE = queue_name("strategy", "control")
OUTCOMES_QUEUE = queue_name("strategy", "outcomes")
OUTCOME_KEYS = (
    EXECUTION_FILL,
    ORDER_REJECTED,  # risk's OrderRejected and a broker's order.rejected state
    *(f"order.{state.value.lower()}" for state in OrderState if state.is_terminal),
)
"""What happened to the strategies' orders: fills, refusals and every terminal state."""


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
        self._announcer = (
            PeriodicTask("strategy-announce", settings.announce_seconds, self.announce)
            if settings.announce_seconds > 0
            else None
        )
        self._started = False

    def subscriptions(self) -> list[Subscription]:
        """Return the queues this service consumes."""
        subscriptions = [
            Subscription(
                queue=BARS_QUEUE,
                # one queue: a higher bar arrives right after the bar that completed it
                bindings=[Binding(market_bars(timeframe)) for timeframe in self.bar_timeframes()],
                handler=self._on_bar,
                single_active_consumer=True,
            ),
            Subscription(
                queue=OUTCOMES_QUEUE,
                bindings=[Binding(key) for key in dict.fromkeys(OUTCOME_KEYS)],
                handler=self._on_outcome,
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

    def bar_timeframes(self) -> list[Timeframe]:
        """Return the trading timeframe and the higher ones the strategies read."""
        trading = self.settings.timeframe
        higher = self.book.higher_timeframes() - {trading}
        return [trading, *sorted(higher, key=lambda timeframe: timeframe.duration)]

    async def _on_bar(self, envelope: Envelope[Message]) -> None:
        bar = envelope.message
        if not isinstance(bar, BarClosed):
            return
        if bar.timeframe is not self.settings.timeframe:
            self.book.on_higher_bar(bar)
            return
        if bar.symbol not in self._warmed_up:
            await self._warm_up(bar)
        await on_bar_closed(envelope, self.context)

    async def _on_prediction(self, envelope: Envelope[Message]) -> None:
        await on_prediction_made(envelope, self.context)

    async def _on_outcome(self, envelope: Envelope[Message]) -> None:
        await on_order_outcome(envelope, self.context)

    async def _on_control(self, envelope: Envelope[Message]) -> None:
        await on_configure_strategy(envelope, self.context)

    async def _warm_up(self, first: BarClosed) -> None:
        """Rebuild indicator state from stored history strictly before the first live bar."""
        async with self.store.transaction() as unit:
            history = await unit.ohlcv.range(
                first.symbol, first.timeframe.value, end=first.opened_at
            )
            higher = [
                row
                for timeframe in self.bar_timeframes()[1:]
                for row in await unit.ohlcv.range(
                    first.symbol, timeframe.value, end=first.opened_at
                )
            ]
        bars = [bar.to_event() for bar in history if bar.opened_at < first.opened_at]
        if self.settings.warm_up_bars:
            bars = bars[-self.settings.warm_up_bars :]
        start = bars[0].opened_at if bars else first.opened_at
        # each higher bar after the trading bar that completed it, as they were published
        higher_bars = sorted(
            (bar.to_event() for bar in higher if start < bar.closed_at <= first.opened_at),
            key=lambda bar: bar.closed_at,
        )
        position = 0
        for bar in bars:
            self.book.warm_up(bar)
            while position < len(higher_bars) and higher_bars[position].closed_at <= bar.closed_at:
                self.book.on_higher_bar(higher_bars[position])
                position += 1
        self._warmed_up.add(first.symbol)

    async def rebuild_positions(self) -> None:
        """Rebuild what each strategy holds, and its orders' outcomes, from the ledger."""
        positions = PositionBook()
        async with self.store.transaction() as unit:
            orders = await unit.orders.list_by_state(tuple(OrderState))
            fills = await unit.fills.list()
        names = set(self.book.slots)
        for order in sorted(orders, key=lambda order: (order.created_at, order.order_id)):
            if order.strategy not in names:
                continue
            positions.sent(
                order.order_id,
                order.strategy,
                order.symbol,
                Side(order.side),
                reduce_only=order.reduce_only,
            )
            positions.orders[order.order_id].resolved = OrderState(order.state).is_terminal
        for fill in sorted(fills, key=lambda fill: (fill.filled_at, fill.fill_id)):
            if fill.strategy in names:
                positions.on_fill(
                    fill.fill_id,
                    fill.order_id,
                    fill.strategy,
                    fill.symbol,
                    Side(fill.side),
                    fill.quantity,
                )
        self.context.positions = positions

    async def announce(self) -> None:
        """Publish each strategy's state (enabled, parameters, regime weights), so the console
        and other subscribers know what runs, also after they joined late."""
        now = self.context.clock.now()
        for name, slot in sorted(self.book.slots.items()):
            await self.bus.publish(
                StrategyParametersUpdated(
                    strategy=name,
                    enabled=slot.enabled,
                    parameters=slot.status(),
                    updated_at=now,
                    updated_by=PRODUCER,
                )
            )

    async def start(self) -> None:
        """Rebuild the strategies' positions from the ledger, subscribe, announce the state."""
        await self.rebuild_positions()
        for subscription in self.subscriptions():
            await self.bus.subscribe(subscription)
        await self.announce()
        if self._announcer is not None:
            self._announcer.start()
        self._started = True

    async def stop(self) -> None:
        """Stop the announcements (the runtime closes the bus)."""
        if self._announcer is not None:
            await self._announcer.stop()
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
