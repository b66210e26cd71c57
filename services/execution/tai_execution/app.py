"""Composition root of the execution service."""

from __future__ import annotations

from tai_bus.api import Binding, MessageBus, Subscription
from tai_core.accounting import Account
from tai_core.clock import Clock
from tai_core.ids import deterministic_id
from tai_core.signing import ApprovalVerifier
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.orders import OrderApproved, OrderState, Side
from tai_events.topics import ORDER_APPROVED, queue_name
from tai_execution.config import ExecutionSettings
from tai_execution.handlers import (
    ExecutionContext,
    on_bar_closed,
    on_order_approved,
    publish_outbox,
    record_results,
    working_order_from,
)
from tai_execution.paper import PaperBroker, PaperBrokerConfig
from tai_store.database import Store
from tai_store.outbox import OutboxRelay, OutboxSweeper
from tai_telemetry.metrics import Telemetry

APPROVALS_QUEUE = queue_name("execution", "approvals")
MARKET_QUEUE = queue_name("execution", "market")
PEM_END = "-----END PUBLIC KEY-----"


def split_public_keys(text: str) -> list[str]:
    """Split concatenated PEM public keys (several are trusted during a key rotation)."""
    return [block.strip() + "\n" + PEM_END + "\n" for block in text.split(PEM_END) if block.strip()]


class ExecutionApp:
    """The execution service: acts only on verified approvals and records every fill."""

    name = "execution"

    def __init__(
        self,
        settings: ExecutionSettings,
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
        self.context = ExecutionContext(
            broker=PaperBroker(
                PaperBrokerConfig(
                    commission_rate=settings.commission_rate, slippage_bps=settings.slippage_bps
                )
            ),
            verifier=ApprovalVerifier.from_pem(*split_public_keys(settings.approval_public_keys)),
            account=Account.opened_with(settings.initial_cash),
            account_name=settings.account,
            store=store,
            bus=bus,
            relay=OutboxRelay(store, bus.publish_raw, producer="execution"),
            clock=clock,
        )
        self._sweeper = (
            OutboxSweeper(self.context.relay, settings.outbox_sweep_seconds)
            if settings.outbox_sweep_seconds > 0
            else None
        )
        self._started = False

    def subscriptions(self) -> list[Subscription]:
        """Return the queues this service consumes."""
        return [
            Subscription(
                queue=APPROVALS_QUEUE,
                bindings=[Binding(ORDER_APPROVED)],
                handler=self._on_approval,
                single_active_consumer=True,
            ),
            Subscription(
                queue=MARKET_QUEUE,
                bindings=[Binding(f"market.bar.{self.settings.timeframe.value}.*")],
                handler=self._on_bar,
                single_active_consumer=True,
            ),
        ]

    async def _on_approval(self, envelope: Envelope[Message]) -> None:
        await on_order_approved(envelope, self.context)

    async def _on_bar(self, envelope: Envelope[Message]) -> None:
        await on_bar_closed(envelope, self.context)

    async def rebuild_state(self) -> None:
        """Rebuild cash, positions and working orders from the ledger."""
        context = self.context
        async with self.store.transaction() as unit:
            fills = await unit.fills.list()
            working = await unit.orders.list_by_state((OrderState.SUBMITTED,))
            approvals = [
                await unit.approvals.get(deterministic_id("apr", order.order_id))
                for order in working
            ]
            symbols = sorted({order.symbol for order in working})
            recent = {
                symbol: await unit.ohlcv.latest(symbol, self.settings.timeframe.value, 64)
                for symbol in symbols
            }
        for fill in fills:
            context.account, _position, _realized = context.account.apply_fill(
                fill.symbol, Side(fill.side).sign * fill.quantity, fill.price, fill.commission
            )
            context.marks[fill.symbol] = fill.price
        for bars in recent.values():
            for bar in sorted(bars, key=lambda item: item.opened_at):
                context.broker.remember_bar(bar.to_event())
        for row in approvals:
            if row is not None:
                approval = OrderApproved.model_validate(row.payload)
                result = context.broker.submit(working_order_from(approval))
                if result is not None:
                    await record_results(context, [result], None)

    async def start(self) -> None:
        """Rebuild state, publish anything a crash left in the outbox, then consume."""
        await self.rebuild_state()
        await publish_outbox(self.context)
        for subscription in self.subscriptions():
            await self.bus.subscribe(subscription)
        if self._sweeper is not None:
            self._sweeper.start()
        self._started = True

    async def stop(self) -> None:
        """Stop the outbox sweeper (the runtime closes the bus)."""
        if self._sweeper is not None:
            await self._sweeper.stop()
        self._started = False

    def ready(self) -> bool:
        """Return True once state is rebuilt and consuming."""
        return self._started


def create_app(
    settings: ExecutionSettings,
    *,
    bus: MessageBus,
    store: Store,
    clock: Clock,
    telemetry: Telemetry,
) -> ExecutionApp:
    """Build the execution service from its settings and injected infrastructure."""
    return ExecutionApp(settings, bus=bus, store=store, clock=clock, telemetry=telemetry)
