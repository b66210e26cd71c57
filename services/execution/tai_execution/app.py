"""Composition root of the execution service."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
from pydantic import SecretStr

from tai_bus.api import Binding, MessageBus, Subscription
from tai_core.accounting import Account
from tai_core.clock import Clock
from tai_core.ids import deterministic_id
from tai_core.periodic import PeriodicTask
from tai_core.signing import ApprovalVerifier
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.orders import OrderApproved, OrderState, Side
from tai_events.topics import ORDER_APPROVED, queue_name
from tai_execution.config import ExecutionSettings
from tai_execution.handlers import (
    ExecutionContext,
    flush_snapshots,
    on_bar_closed,
    on_order_approved,
    publish_outbox,
    reconcile_positions,
    record_results,
    record_trades,
    resolve_in_doubt,
    submit_paper,
)
from tai_execution.ig import (
    DEMO_BASE_URL,
    LIVE_BASE_URL,
    IgBroker,
    IgClient,
    IgCredentials,
)
from tai_execution.metrics import ExecutionMetrics
from tai_execution.paper import (
    RECENT_BARS_KEPT,
    PaperBroker,
    PaperBrokerConfig,
    bracket_legs,
    entry_order_from,
)
from tai_execution.portfolio import CurrencyConverter
from tai_execution.reconciliation import PositionMismatch
from tai_quant.trades import TradeLedger
from tai_store.database import Store
from tai_store.outbox import OutboxRelay, OutboxSweeper
from tai_store.ratelimit import RateLimiter, create_rate_limiter
from tai_telemetry.metrics import Telemetry

APPROVALS_QUEUE = queue_name("execution", "approvals")
MARKET_QUEUE = queue_name("execution", "market")
PEM_END = "-----END PUBLIC KEY-----"
_LOG = logging.getLogger(__name__)


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
        self._http: httpx.AsyncClient | None = None
        self._limiter: RateLimiter | None = None
        self._clock = clock
        self.context = ExecutionContext(
            broker=PaperBroker(
                PaperBrokerConfig(
                    commission_rate=settings.commission_rate,
                    slippage_bps=settings.slippage_bps,
                    spread_bps=settings.spread_bps,
                    commission_per_trade=settings.commission_per_trade,
                    commission_per_unit=settings.commission_per_unit,
                    max_volume_share=settings.max_volume_share,
                )
            ),
            verifier=ApprovalVerifier.from_pem(
                *split_public_keys(settings.approval_public_keys),
                max_lifetime=timedelta(seconds=settings.approval_max_lifetime_seconds),
            ),
            account=Account.opened_with(settings.initial_cash),
            account_name=settings.account,
            store=store,
            bus=bus,
            relay=OutboxRelay(store, bus.publish_raw, producer="execution"),
            clock=clock,
            metrics=ExecutionMetrics.create(telemetry.registry),
            live=self._ig_broker(settings) if settings.broker == "ig" else None,
            converter=CurrencyConverter(
                settings.account_currency, dict(settings.instrument_currencies)
            ),
            timeframe=settings.timeframe,
        )
        self.context.snapshot_batching = settings.snapshot_flush_seconds > 0
        self._timers: list[PeriodicTask] = []
        if settings.reconcile_seconds > 0:
            self._timers.append(
                PeriodicTask("reconciliation", settings.reconcile_seconds, self.reconcile_once)
            )
        if self.context.snapshot_batching:
            self._timers.append(
                PeriodicTask(
                    "writing the equity snapshots",
                    settings.snapshot_flush_seconds,
                    lambda: flush_snapshots(self.context),
                )
            )
        self._sweeper = (
            OutboxSweeper(self.context.relay, settings.outbox_sweep_seconds)
            if settings.outbox_sweep_seconds > 0
            else None
        )
        self._started = False

    def _ig_broker(self, settings: ExecutionSettings) -> IgBroker:
        """Build the IG adapter (credentials were checked present by the settings)."""
        base_url = settings.ig_base_url or (
            LIVE_BASE_URL if settings.ig_environment == "live" else DEMO_BASE_URL
        )
        self._http = httpx.AsyncClient(base_url=base_url, timeout=settings.ig_timeout_seconds)
        credentials = IgCredentials(
            api_key=settings.ig_api_key or SecretStr(""),
            identifier=settings.ig_identifier or "",
            password=settings.ig_password or SecretStr(""),
        )
        # The key's allowances are shared with ingestion through Redis when it is set.
        self._limiter = create_rate_limiter(settings.redis_url, self._clock)
        client = IgClient(self._http, credentials, limiter=self._limiter)
        return IgBroker(
            client,
            settings.ig_epics,
            clock=self._clock,
            currency_code=settings.ig_currency_code,
            contract_sizes=settings.ig_contract_sizes,
        )

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
        """Rebuild cash, positions, working orders and armed brackets from the ledger."""
        context = self.context
        live = context.live is not None
        async with self.store.transaction() as unit:
            fills = await unit.fills.list()
            working = await unit.orders.list_by_state(
                (OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED)
            )
            traded = await unit.orders.list_by_state(
                (OrderState.FILLED, OrderState.PARTIALLY_FILLED)
            )
            wanted = {order.order_id for order in working} | {
                order.order_id
                for order in traded
                if order.stop_loss is not None or order.take_profit is not None
            }
            approvals = {
                order_id: await unit.approvals.get(deterministic_id("apr", order_id))
                for order_id in sorted(wanted)
            }
            states = {order.order_id: order for order in working + traded}
            fill_counts = {
                order_id: len(await unit.fills.for_order(order_id)) for order_id in wanted
            }
            # Every symbol's stored bars (ingestion stores a bar before publishing it), so an
            # approval still in flight fills at the bar after its signal, as it would have
            # without the restart, even if that bar was handled before it.
            timeframe = self.settings.timeframe.value
            recent = {
                symbol: await unit.ohlcv.latest(symbol, timeframe, RECENT_BARS_KEPT)
                for symbol in await unit.ohlcv.symbols(timeframe)
            }
        for fill in fills:
            context.account, _position, _realized = context.account.apply_fill(
                fill.symbol, Side(fill.side).sign * fill.quantity, fill.price, fill.commission
            )
            context.marks[fill.symbol] = fill.price
            # the strategies' open lots, so the next closing fill records its trade
            record_trades(
                context.trade_ledgers.setdefault(fill.strategy, TradeLedger(keep_closed=False)),
                fill.to_event(),
                context.account_name,
            )
        if live:
            return
        for symbol, position in context.account.positions.items():
            context.broker.restore_position(symbol, position.quantity)
        for bars in recent.values():
            for bar in sorted(bars, key=lambda item: item.opened_at):
                event = bar.to_event()
                context.broker.remember_bar(event)
                context.observe_bar(event)
        results = []
        for order_id, row in approvals.items():
            if row is None:
                continue
            entry = entry_order_from(OrderApproved.model_validate(row.payload))
            ledger = states[order_id]
            stop, target = bracket_legs(entry)
            legs = [leg.order_id for leg in (stop, target) if leg is not None]
            armed = [
                leg_id
                for leg_id in legs
                if leg_id in states and states[leg_id].state == OrderState.SUBMITTED.value
            ]
            if ledger.filled_quantity > 0 and armed:
                context.broker.restore_bracket(entry, ledger.filled_quantity)
            if ledger.state == OrderState.SUBMITTED.value and fill_counts[order_id] == 0:
                results.extend(await submit_paper(context, entry))
            elif ledger.state in {OrderState.SUBMITTED.value, OrderState.PARTIALLY_FILLED.value}:
                context.broker.restore_order(entry, ledger.filled_quantity, fill_counts[order_id])
        if results:
            await record_results(context, results, None)

    async def start(self) -> None:
        """Rebuild state, publish anything a crash left in the outbox, then consume."""
        await self.rebuild_state()
        if self.context.metrics is not None:
            self.context.metrics.open_positions.set(
                sum(not position.is_flat for position in self.context.account.positions.values())
            )
        await publish_outbox(self.context)
        await resolve_in_doubt(self.context)
        await reconcile_positions(self.context, audit_success=True)
        for subscription in self.subscriptions():
            await self.bus.subscribe(subscription)
        if self._sweeper is not None:
            self._sweeper.start()
        for timer in self._timers:
            timer.start()
        self._started = True

    async def reconcile_once(self) -> list[PositionMismatch]:
        """Settle orders in doubt, then compare broker and ledger positions (between updates)."""
        async with self.context.book_lock:
            await resolve_in_doubt(self.context)
            return await reconcile_positions(self.context, audit_success=False)

    async def stop(self) -> None:
        """Stop the timers and write the last snapshots (the runtime closes the bus)."""
        if self._sweeper is not None:
            await self._sweeper.stop()
        for timer in self._timers:
            await timer.stop()
        try:
            await flush_snapshots(self.context)
        except Exception:  # the ledger is down: the curve misses these points, nothing else
            _LOG.exception("writing the last equity snapshots failed")
        if self._http is not None:
            await self._http.aclose()
        if self._limiter is not None:
            await self._limiter.close()
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
