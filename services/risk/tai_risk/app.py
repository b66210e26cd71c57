"""Composition root of the risk service: the only approver of orders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tai_bus.api import Binding, Handler, MessageBus, Subscription
from tai_core.accounting import Account
from tai_core.clock import Clock
from tai_core.periodic import PeriodicTask
from tai_core.signing import ApprovalSigner
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.risk import RiskLimitsPublished
from tai_events.topics import (
    ALL_ALERTS,
    ALL_CONTROL,
    CONTROL_EXCHANGE,
    EXECUTION_FILL,
    ORDER_REQUESTED,
    order_state,
    queue_name,
)
from tai_risk.breakers import CircuitBreakers, describe_breakers
from tai_risk.config import RiskSettings
from tai_risk.engine import RiskEngine
from tai_risk.handlers import (
    RELEASING_STATES,
    RiskContext,
    on_alert_raised,
    on_bar_closed,
    on_control,
    on_fill_executed,
    on_order_requested,
    on_order_status_changed,
    publish_outbox,
    rebuild,
)
from tai_risk.metrics import RiskMetrics
from tai_risk.state import MarketHistory, PortfolioState, TradingStateMachine
from tai_store.database import Store
from tai_store.outbox import OutboxRelay, OutboxSweeper
from tai_telemetry.metrics import Telemetry

ORDERS_QUEUE = queue_name("risk", "orders")
MARKET_QUEUE = queue_name("risk", "market")
FILLS_QUEUE = queue_name("risk", "fills")
ORDER_STATES_QUEUE = queue_name("risk", "order-states")
CONTROL_QUEUE = queue_name("risk", "control")
ALERTS_QUEUE = queue_name("risk", "alerts")


class RiskApp:
    """The risk service: rebuilds its state from the ledger, then decides on every request."""

    name = "risk"

    def __init__(
        self,
        settings: RiskSettings,
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
        signer = ApprovalSigner.from_pem(settings.approval_private_key.get_secret_value())
        market = MarketHistory(
            max_bars=settings.market_history_bars,
            atr_period=settings.atr_period,
            atr_mean_bars=settings.atr_mean_bars,
        )
        self.context = RiskContext(
            engine=RiskEngine(settings.limits(), signer, clock),
            portfolio=PortfolioState(equity=settings.initial_equity, market=market),
            trading=TradingStateMachine(),
            account=Account.opened_with(settings.initial_equity),
            store=store,
            bus=bus,
            relay=OutboxRelay(store, bus.publish_raw, producer="risk"),
            clock=clock,
            account_name=settings.account,
            breakers=CircuitBreakers(settings.breakers(), peak_equity=settings.initial_equity),
            metrics=RiskMetrics.create(telemetry.registry),
            initial_equity=settings.initial_equity,
        )
        self._sweeper = (
            OutboxSweeper(self.context.relay, settings.outbox_sweep_seconds)
            if settings.outbox_sweep_seconds > 0
            else None
        )
        self._announcer = (
            PeriodicTask("risk-limits", settings.limits_announce_seconds, self.announce_limits)
            if settings.limits_announce_seconds > 0
            else None
        )
        self._started = False

    def limits_event(self) -> RiskLimitsPublished:
        """Return the limits and breaker table this risk service enforces."""
        return RiskLimitsPublished(
            limits=self.context.engine.limits.published(),
            breakers=describe_breakers(self.context.breakers.settings),
            published_at=self.context.clock.now(),
            account=self.settings.account,
        )

    async def announce_limits(self) -> None:
        """Publish the limits (a state announcement: the newest one is what counts)."""
        await self.bus.publish(self.limits_event())

    def subscriptions(self) -> list[Subscription]:
        """Return the queues this service consumes (orders on a single active consumer)."""
        return [
            Subscription(
                queue=ORDERS_QUEUE,
                bindings=[Binding(ORDER_REQUESTED)],
                handler=self._bind(on_order_requested),
                single_active_consumer=True,
            ),
            Subscription(
                queue=MARKET_QUEUE,
                bindings=[Binding("market.bar.*.*")],
                handler=self._bind(on_bar_closed),
                single_active_consumer=True,
            ),
            Subscription(
                queue=FILLS_QUEUE,
                bindings=[Binding(EXECUTION_FILL)],
                handler=self._bind(on_fill_executed),
                single_active_consumer=True,
            ),
            Subscription(
                queue=ORDER_STATES_QUEUE,
                bindings=[Binding(order_state(state.value)) for state in RELEASING_STATES],
                handler=self._bind(on_order_status_changed),
                single_active_consumer=True,
            ),
            Subscription(
                queue=CONTROL_QUEUE,
                bindings=[Binding(ALL_CONTROL, exchange=CONTROL_EXCHANGE)],
                handler=self._bind(on_control),
                single_active_consumer=True,
            ),
            Subscription(
                queue=ALERTS_QUEUE,
                bindings=[Binding(ALL_ALERTS)],
                handler=self._bind(on_alert_raised),
                single_active_consumer=True,
            ),
        ]

    def _bind(
        self, handler: Callable[[Envelope[Message], RiskContext], Awaitable[None]]
    ) -> Handler:
        async def bound(envelope: Envelope[Message]) -> None:
            # one message at a time: risk is one actor, and the ledger freshness check
            # compares counts that only settle between handlers
            async with self.context.lock:
                await handler(envelope, self.context)

        return bound

    async def rebuild_state(self) -> None:
        """Rebuild positions, equity, peak, daily P&L, history and state from the ledger."""
        async with self.context.lock, self.store.transaction() as unit:
            await rebuild(unit, self.context)
        self.context.observe()

    async def start(self) -> None:
        """Rebuild state, publish anything a crash left in the outbox, then consume."""
        await self.rebuild_state()
        await publish_outbox(self.context)
        for subscription in self.subscriptions():
            await self.bus.subscribe(subscription)
        if self._sweeper is not None:
            self._sweeper.start()
        await self.announce_limits()
        if self._announcer is not None:
            self._announcer.start()
        self._started = True

    async def stop(self) -> None:
        """Stop the outbox sweeper (the runtime closes the bus)."""
        if self._sweeper is not None:
            await self._sweeper.stop()
        if self._announcer is not None:
            await self._announcer.stop()
        self._started = False

    def ready(self) -> bool:
        """Return True once state is rebuilt and consuming."""
        return self._started


def create_app(
    settings: RiskSettings,
    *,
    bus: MessageBus,
    store: Store,
    clock: Clock,
    telemetry: Telemetry,
) -> RiskApp:
    """Build the risk service from its settings and injected infrastructure."""
    return RiskApp(settings, bus=bus, store=store, clock=clock, telemetry=telemetry)
