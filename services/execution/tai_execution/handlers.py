"""Bus <-> execution glue: verify approvals, hand them to the broker, record what happens.

Every order transition is checked by the state machine (``tai_execution.orders``) and written as
a ledger row together with its event through the transactional outbox, in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from tai_bus.api import MessageBus
from tai_core.accounting import Account
from tai_core.clock import Clock
from tai_core.ids import deterministic_id
from tai_core.signing import ApprovalVerifier
from tai_events.alerts import AlertRaised, Severity
from tai_events.base import Message
from tai_events.codec import Envelope, make_headers
from tai_events.headers import MessageHeaders
from tai_events.market import BarClosed, Timeframe
from tai_events.orders import (
    FillExecuted,
    OrderApproved,
    OrderState,
    OrderStatusChanged,
    OrderType,
    PositionUpdated,
)
from tai_execution.ig import (
    DealConfirmation,
    IgBroker,
    IgError,
    IgRequestRejectedError,
    deal_reference,
    rejection_text,
)
from tai_execution.metrics import ExecutionMetrics
from tai_execution.orders import OrderStatus
from tai_execution.paper import (
    PaperBracketArmed,
    PaperBroker,
    PaperCancellation,
    PaperFill,
    PaperRejection,
    PaperResult,
    WorkingOrder,
    entry_order_from,
)
from tai_execution.portfolio import (
    ConversionUnavailableError,
    CurrencyConverter,
    value_position,
)
from tai_execution.reconciliation import PositionMismatch, reconcile
from tai_execution.verification import check_approval
from tai_quant.trades import TradeLedger
from tai_store import Store, UnitOfWork
from tai_store.outbox import OutboxRelay
from tai_store.records import Trade
from tai_telemetry.tracing import inject_traceparent

CONSUMER = "execution"
_LOG = logging.getLogger(__name__)


@dataclass
class ExecutionContext:
    """Everything the execution handlers touch."""

    broker: PaperBroker
    verifier: ApprovalVerifier
    account: Account
    account_name: str
    store: Store
    bus: MessageBus
    relay: OutboxRelay
    clock: Clock
    metrics: ExecutionMetrics | None = None
    live: IgBroker | None = None
    converter: CurrencyConverter = field(default_factory=lambda: CurrencyConverter("USD"))
    marks: dict[str, float] = field(default_factory=dict)
    timeframe: Timeframe = Timeframe.H1
    """The bar timeframe this service trades on (stored bars of it fill late approvals)."""
    market_time: datetime | None = None
    """Close of the newest bar handled: the moment the account is snapshotted at."""
    pending_snapshots: dict[datetime, tuple[float, float]] = field(default_factory=dict)
    """Per-bar (cash, equity) points not yet written (the equity curve is written in batches:
    it is derived data, and one commit per bar would cap the throughput)."""
    snapshot_batching: bool = False
    book_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while the broker's book and the ledger may differ (a fill not yet recorded), so a
    reconciliation never compares them mid-update."""
    order_traces: dict[str, str] = field(default_factory=dict)
    """W3C traceparent of each working order's approval: its fill continues that trace."""
    trade_ledgers: dict[str, TradeLedger] = field(default_factory=dict)
    """Per strategy, its open lots: a fill that closes one records the strategy's trade."""
    in_flight: set[str] = field(default_factory=set)

    def observe_bar(self, bar: BarClosed) -> None:
        """Mark the account to a bar's close and advance market time."""
        self.converter.observe(bar.symbol, bar.close)
        self.marks[bar.symbol] = bar.close
        if self.market_time is None or bar.closed_at > self.market_time:
            self.market_time = bar.closed_at

    @property
    def broker_name(self) -> str:
        """Return the name fills are recorded under."""
        return "paper" if self.live is None else self.live.name


async def _outbox(
    unit: UnitOfWork,
    context: ExecutionContext,
    message: Message,
    cause: MessageHeaders | None,
    *,
    traceparent: str | None = None,
) -> None:
    headers = make_headers(
        message,
        producer=CONSUMER,
        occurred_at=context.clock.now(),
        cause=cause,
        traceparent=traceparent or inject_traceparent(),
    )
    await unit.outbox.add(message, headers)


async def publish_outbox(context: ExecutionContext) -> None:
    """Publish what committed transactions left in the outbox (the relay serialises calls)."""
    await context.relay.publish_pending()


async def _status(unit: UnitOfWork, order_id: str) -> OrderStatus | None:
    order = await unit.orders.get(order_id)
    if order is None:
        return None
    return OrderStatus(
        order_id=order.order_id,
        symbol=order.symbol,
        quantity=order.approved_quantity or order.requested_quantity or 0.0,
        state=OrderState(order.state),
        filled_quantity=order.filled_quantity,
        average_fill_price=order.average_fill_price,
    )


async def _record_transition(
    unit: UnitOfWork,
    context: ExecutionContext,
    event: OrderStatusChanged,
    cause: MessageHeaders | None,
    entered: list[OrderState],
    average_fill_price: float | None = None,
    traceparent: str | None = None,
) -> None:
    await unit.orders.set_state(
        event.order_id,
        event.state,
        at=event.changed_at,
        reason=event.reason,
        filled_quantity=event.filled_quantity,
        average_fill_price=average_fill_price,
    )
    await _outbox(unit, context, event, cause, traceparent=traceparent)
    entered.append(event.state)


def _count(context: ExecutionContext, entered: list[OrderState]) -> None:
    if context.metrics is None:
        return
    for state in entered:
        context.metrics.orders.labels(state=state.value).inc()
    context.metrics.open_positions.set(
        sum(1 for position in context.account.positions.values() if not position.is_flat)
    )


async def _refuse(
    context: ExecutionContext,
    envelope: Envelope[Message],
    approval: OrderApproved,
    code: str,
    reason: str,
) -> None:
    now = context.clock.now()
    async with context.store.transaction() as unit:
        await unit.audit.record(
            actor=CONSUMER,
            action="execution.approval_refused",
            subject=approval.order_id,
            outcome=code,
            details={
                "reason": reason,
                "approval": approval.model_dump(mode="json"),
                "producer": envelope.headers.producer,
            },
            at=now,
        )
        await _outbox(
            unit,
            context,
            AlertRaised(
                severity=Severity.CRITICAL,
                source="execution",
                code=code,
                message=f"refused approval for order {approval.order_id}: {reason}",
                details={
                    "order_id": approval.order_id,
                    "approval_id": approval.approval_id,
                    "producer": envelope.headers.producer,
                },
                raised_at=now,
            ),
            envelope.headers,
        )
    await publish_outbox(context)


async def on_order_approved(envelope: Envelope[Message], context: ExecutionContext) -> None:
    """Act on a verified, unexpired, unused approval: submit it to the broker."""
    approval = envelope.message
    if not isinstance(approval, OrderApproved):
        return
    now = context.clock.now()
    check = check_approval(approval, context.verifier, now)
    if not check.accepted:
        await _refuse(context, envelope, approval, check.code, check.reason)
        return
    entered: list[OrderState] = []
    reason = f"submitted to the {context.broker_name} broker"
    if context.live is not None:
        reason += f" as dealReference {deal_reference(approval.order_id)}"
    async with context.store.transaction() as unit:
        if not await unit.inbox.claim(CONSUMER, envelope.headers.message_id, now):
            return
        replayed = not await unit.approvals.consume(approval.approval_id, now)
        if not replayed:
            status = await _status(unit, approval.order_id)
            if status is None:
                await unit.orders.add(
                    order_id=approval.order_id,
                    strategy=approval.strategy,
                    symbol=approval.symbol,
                    side=approval.side,
                    order_type=approval.order_type,
                    requested_quantity=approval.requested_quantity,
                    approved_quantity=approval.quantity,
                    sized_by=approval.sized_by,
                    reduce_only=approval.reduce_only,
                    reference_price=(approval.price_floor + approval.price_ceiling) / 2,
                    signal_time=approval.signal_time,
                    at=now,
                    limit_price=approval.limit_price,
                    stop_price=approval.stop_price,
                    stop_loss=approval.stop_loss,
                    take_profit=approval.take_profit,
                    reason="approved by risk",
                )
                status = OrderStatus(approval.order_id, approval.symbol, approval.quantity)
            # The SUBMITTED row commits before the broker hears of the order: after a crash the
            # ledger names every order that may be at the broker, so none is sent twice.
            transition = status.move(OrderState.SUBMITTED, reason, now)
            await _record_transition(unit, context, transition.event, envelope.headers, entered)
    if replayed:
        await _refuse(
            context,
            envelope,
            approval,
            "approval_replayed",
            "approval is unknown to the ledger or was already used",
        )
        return
    _count(context, entered)
    await publish_outbox(context)
    order = entry_order_from(approval)
    traceparent = inject_traceparent()
    if traceparent is not None:
        context.order_traces[order.order_id] = traceparent
    async with context.book_lock:
        if context.live is not None:
            await submit_live(context, order, envelope.headers)
            return
        results = await submit_paper(context, order)
        if results:
            await record_results(context, results, envelope.headers)


async def submit_paper(context: ExecutionContext, order: WorkingOrder) -> list[PaperResult]:
    """Hand an order to the paper broker with the stored bars it no longer keeps.

    However late the approval arrives, the order fills at the first bar after its signal,
    as in the backtester: bars this service already handled come from the ledger, where
    ingestion stored them before publishing.
    """
    gap = context.broker.missing_history(order)
    earlier: list[BarClosed] = []
    if gap is not None:
        start, end = gap
        # A whole market order without a bracket is done at the first bar after its signal;
        # a bracket, a resting order or partial fills need every bar since.
        first_bar_settles = (
            order.order_type is OrderType.MARKET
            and order.stop_loss is None
            and order.take_profit is None
            and context.broker.config.max_volume_share is None
        )
        async with context.store.transaction() as unit:
            stored = await unit.ohlcv.range(
                order.symbol,
                context.timeframe,
                start,
                end,
                limit=1 if first_bar_settles else None,
            )
        earlier = [bar.to_event() for bar in stored]
    return context.broker.submit_all(order, earlier)


def _live_broker(context: ExecutionContext) -> IgBroker:
    """Return the live broker; paper trading never reaches the live-only paths."""
    if context.live is None:
        raise RuntimeError("this path needs the live broker, and execution runs the paper one")
    return context.live


async def submit_live(
    context: ExecutionContext, order: WorkingOrder, cause: MessageHeaders | None
) -> None:
    """Send an order to the live broker and record its confirmation (or leave it in doubt)."""
    live = _live_broker(context)
    context.in_flight.add(order.order_id)
    try:
        try:
            confirmation = await live.open_position(order)
        except IgRequestRejectedError as error:
            await record_results(context, [PaperRejection(order, str(error))], cause)
            return
        except IgError as error:
            # Outcome unknown: the order stays SUBMITTED and is resolved from /confirms later.
            await _alert(
                context,
                Severity.WARNING,
                "order_in_doubt",
                f"order {order.order_id}: {error}; resolving from IG confirms",
                {"order_id": order.order_id, "deal_reference": deal_reference(order.order_id)},
                cause,
            )
            return
        await record_confirmation(context, order, confirmation, cause)
    finally:
        context.in_flight.discard(order.order_id)


async def record_confirmation(
    context: ExecutionContext,
    order: WorkingOrder,
    confirmation: DealConfirmation,
    cause: MessageHeaders | None,
) -> None:
    """Record IG's verdict on an order: a fill at the dealt level, or a rejection."""
    live = _live_broker(context)
    if confirmation.accepted and order.order_type is not OrderType.MARKET:
        # A resting LIMIT/STOP order accepted by IG is working there, not filled: it stays
        # SUBMITTED and reconciliation compares the positions it opens once it triggers.
        async with context.store.transaction() as unit:
            await unit.audit.record(
                actor=CONSUMER,
                action="execution.working_order_placed",
                subject=order.order_id,
                outcome="accepted",
                details={
                    "deal_id": confirmation.deal_id or "",
                    "reference": confirmation.deal_reference,
                },
                at=context.clock.now(),
            )
        return
    if not confirmation.accepted or confirmation.level is None:
        await record_results(
            context, [PaperRejection(order, rejection_text(confirmation.reason))], cause
        )
        return
    quantity = (
        order.quantity
        if confirmation.size is None
        else live.quantity(order.symbol, confirmation.size)
    )
    fill = PaperFill(
        fill_id=deterministic_id("fill", order.order_id, 1),
        order=order,
        price=confirmation.level,
        commission=0.0,
        filled_at=context.clock.now(),
        quantity=min(quantity, order.quantity),
    )
    await record_results(context, [fill], cause)


async def resolve_in_doubt(context: ExecutionContext) -> int:
    """Settle SUBMITTED orders the live broker may hold: confirm, send once, or expire them."""
    if context.live is None:
        return 0
    async with context.store.transaction() as unit:
        pending = await unit.orders.list_by_state((OrderState.SUBMITTED,))
        approvals = {
            order.order_id: await unit.approvals.get(deterministic_id("apr", order.order_id))
            for order in pending
        }
    resolved = 0
    for order_row in pending:
        row = approvals.get(order_row.order_id)
        if row is None or order_row.order_id in context.in_flight:
            continue
        approval = OrderApproved.model_validate(row.payload)
        order = entry_order_from(approval)
        confirmation = await context.live.confirmation(deal_reference(order.order_id))
        if confirmation is not None:
            if confirmation.accepted and order.order_type is not OrderType.MARKET:
                continue  # resting at IG: nothing to settle until it triggers
            await record_confirmation(context, order, confirmation, None)
        elif context.clock.now() >= approval.expires_at:
            await record_results(
                context,
                [PaperCancellation(order, "approval expired before IG received the order")],
                None,
                cancelled_state=OrderState.EXPIRED,
            )
        else:
            # IG never saw it (deal-not-found): this is the one and only send.
            await submit_live(context, order, None)
        resolved += 1
    return resolved


async def _alert(
    context: ExecutionContext,
    severity: Severity,
    code: str,
    message: str,
    details: dict[str, str],
    cause: MessageHeaders | None,
) -> None:
    now = context.clock.now()
    async with context.store.transaction() as unit:
        await unit.audit.record(
            actor=CONSUMER,
            action=f"execution.{code}",
            subject=details.get("order_id", code),
            outcome=severity.value,
            details={"message": message, **details},
            at=now,
        )
        await _outbox(
            unit,
            context,
            AlertRaised(
                severity=severity,
                source="execution",
                code=code,
                message=message[:2000],
                details=details,
                raised_at=now,
            ),
            cause,
        )
    await publish_outbox(context)


async def reconcile_positions(
    context: ExecutionContext, *, audit_success: bool
) -> list[PositionMismatch]:
    """Compare the broker's positions with the ledger's; alert and audit any mismatch."""
    if context.live is not None:
        held = await context.live.positions()
    else:
        held = context.broker.positions()
    recorded = {
        symbol: position.quantity
        for symbol, position in context.account.positions.items()
        if not position.is_flat
    }
    mismatches = reconcile(held, recorded)
    outcome = "mismatch" if mismatches else "ok"
    if context.metrics is not None:
        context.metrics.reconciliations.labels(outcome=outcome).inc()
    if not mismatches:
        if audit_success:
            async with context.store.transaction() as unit:
                await unit.audit.record(
                    actor=CONSUMER,
                    action="execution.reconciliation",
                    subject=context.account_name,
                    outcome="ok",
                    details={"positions": {k: str(v) for k, v in held.items()}},
                    at=context.clock.now(),
                )
        return mismatches
    text = "; ".join(mismatch.describe() for mismatch in mismatches)
    details = {mismatch.symbol: mismatch.describe() for mismatch in mismatches}
    await _alert(
        context,
        Severity.CRITICAL,
        "reconciliation_failed",
        f"broker and ledger positions differ: {text}",
        {"account": context.account_name, **details},
        None,
    )
    return mismatches


async def on_bar_closed(envelope: Envelope[Message], context: ExecutionContext) -> None:
    """Fill working orders at this bar, trigger bracket legs, mark the account to its close."""
    bar = envelope.message
    if not isinstance(bar, BarClosed):
        return
    context.observe_bar(bar)
    async with context.book_lock:
        results = context.broker.on_bar(bar) if context.live is None else []
        if results:
            await record_results(context, results, envelope.headers)
    _value_positions(context)
    context.pending_snapshots.setdefault(
        bar.closed_at, (context.account.cash, context.account.equity(context.marks))
    )
    if not context.snapshot_batching:
        await flush_snapshots(context)


async def flush_snapshots(context: ExecutionContext) -> None:
    """Write the pending equity snapshots in one transaction."""
    if not context.pending_snapshots:
        return
    points = dict(context.pending_snapshots)
    async with context.store.transaction() as unit:
        await unit.snapshots.add_many(context.account_name, points)
    _forget_written(context, points)


def _forget_written(context: ExecutionContext, points: dict[datetime, tuple[float, float]]) -> None:
    """Drop the pending snapshots a committed transaction wrote (a failed one leaves them)."""
    for taken_at in points:
        context.pending_snapshots.pop(taken_at, None)


def _value_positions(context: ExecutionContext) -> None:
    """Set each open position's unrealised P&L in the account currency (when convertible)."""
    if context.metrics is None:
        return
    for symbol, position in context.account.positions.items():
        mark = context.marks.get(symbol)
        if mark is None:
            continue
        try:
            valuation = value_position(position, mark, context.converter)
        except ConversionUnavailableError:
            continue  # no conversion pair seen yet: leave the last value rather than guess
        context.metrics.unrealized_pnl.labels(symbol=symbol).set(valuation.unrealized_pnl_account)


async def record_results(
    context: ExecutionContext,
    results: list[PaperResult],
    cause: MessageHeaders | None,
    *,
    cancelled_state: OrderState = OrderState.CANCELLED,
) -> None:
    """Write fills, rejections, cancellations, brackets, positions and events in one transaction."""
    now = context.clock.now()
    account = context.account
    entered: list[OrderState] = []
    filled = False
    written: dict[datetime, tuple[float, float]] = {}
    # the strategies' lots change only once the transaction commits (a retry starts afresh)
    ledgers: dict[str, TradeLedger] = {}
    async with context.store.transaction() as unit:
        for result in results:
            order = result.order if not isinstance(result, PaperBracketArmed) else result.entry
            if isinstance(result, PaperBracketArmed):
                await _arm_legs(unit, context, result, cause, entered, now)
                continue
            status = await _status(unit, order.order_id)
            if status is None or status.state.is_terminal:
                continue  # already settled (a redelivery) or unknown to the ledger
            if isinstance(result, PaperRejection):
                transition = status.move(OrderState.REJECTED, result.reason, now)
                await _record_transition(unit, context, transition.event, cause, entered)
                continue
            if isinstance(result, PaperCancellation):
                transition = status.move(cancelled_state, result.reason, now)
                await _record_transition(unit, context, transition.event, cause, entered)
                continue
            quantity = result.filled_quantity
            fill = FillExecuted(
                fill_id=result.fill_id,
                order_id=order.order_id,
                strategy=order.strategy,
                symbol=order.symbol,
                side=order.side,
                quantity=quantity,
                price=result.price,
                commission=result.commission,
                filled_at=result.filled_at,
                broker=context.broker_name,
            )
            if not await unit.fills.add(fill):
                continue
            account, position, _realized = account.apply_fill(
                order.symbol, order.side.sign * quantity, result.price, result.commission
            )
            if order.strategy not in ledgers:
                held = context.trade_ledgers.get(order.strategy)
                ledgers[order.strategy] = (
                    held.copy_open() if held is not None else TradeLedger(keep_closed=False)
                )
            for trade in record_trades(ledgers[order.strategy], fill, context.account_name):
                await unit.trades.add(trade)
            filled = True
            transition = status.fill(quantity, result.price, now)
            # The fill continues the trace of the approval (and so of the bar that signalled
            # it), not of the bar it happened to fill on.
            trace = context.order_traces.get(order.parent_order_id or order.order_id)
            await _outbox(unit, context, fill, cause, traceparent=trace)
            await _record_transition(
                unit,
                context,
                transition.event,
                cause,
                entered,
                average_fill_price=transition.status.average_fill_price,
                traceparent=trace,
            )
            if transition.status.state.is_terminal and (
                order.is_bracket_leg or (order.stop_loss is None and order.take_profit is None)
            ):
                context.order_traces.pop(order.parent_order_id or order.order_id, None)
            await unit.positions.upsert(
                account=context.account_name,
                symbol=order.symbol,
                quantity=position.quantity,
                average_price=position.average_price,
                realized_pnl=position.realized_pnl,
                last_price=result.price,
                at=result.filled_at,
            )
            await _outbox(
                unit,
                context,
                PositionUpdated(
                    symbol=order.symbol,
                    quantity=position.quantity,
                    average_price=position.average_price,
                    realized_pnl=position.realized_pnl,
                    unrealized_pnl=position.unrealized_pnl(result.price),
                    mark_price=result.price,
                    updated_at=result.filled_at,
                ),
                cause,
                traceparent=trace,
            )
        if filled and context.market_time is not None:
            # A fill can be recorded after its bar's snapshot (an approval that arrived late
            # fills at a bar already handled): the snapshot at market time must include it.
            # The pending points go first, so the put replaces the one at market time.
            written = dict(context.pending_snapshots)
            await unit.snapshots.add_many(context.account_name, written)
            await unit.snapshots.put(
                context.account_name,
                context.market_time,
                account.cash,
                account.equity(context.marks),
            )
    context.account = account
    context.trade_ledgers.update(ledgers)
    _forget_written(context, written)
    _count(context, entered)
    await publish_outbox(context)


def record_trades(ledger: TradeLedger, fill: FillExecuted, account: str) -> list[Trade]:
    """Apply a fill to its strategy's lots; return the trades it closed, as ledger rows."""
    closed = ledger.apply(
        fill.symbol,
        fill.side.sign * fill.quantity,
        fill.price,
        fill.commission,
        time=fill.filled_at,
        bar=0,
        reason=fill.order_id,
    )
    return [
        Trade(
            trade_id=deterministic_id("trd", fill.fill_id, index),
            account=account,
            strategy=fill.strategy,
            symbol=trade.symbol,
            direction="LONG" if trade.size > 0 else "SHORT",
            quantity=abs(trade.size),
            entry_time=trade.entry_time,
            entry_price=trade.entry_price,
            exit_time=trade.exit_time,
            exit_price=trade.exit_price,
            pnl=trade.pnl,
            commission=trade.commission,
        )
        for index, trade in enumerate(closed)
    ]


async def _arm_legs(
    unit: UnitOfWork,
    context: ExecutionContext,
    armed: PaperBracketArmed,
    cause: MessageHeaders | None,
    entered: list[OrderState],
    now: datetime,
) -> None:
    """Record each bracket leg as its own order: NEW, then SUBMITTED (working at the broker)."""
    for leg in armed.legs:
        if await unit.orders.get(leg.order_id) is not None:
            continue
        name = "stop-loss" if leg.stop_price is not None else "take-profit"
        reason = f"{name} of {armed.entry.order_id}"
        await unit.orders.add(
            order_id=leg.order_id,
            strategy=leg.strategy,
            symbol=leg.symbol,
            side=leg.side,
            order_type=leg.order_type,
            requested_quantity=leg.quantity,
            approved_quantity=leg.quantity,
            reduce_only=True,  # a leg only ever closes its entry's position
            reference_price=leg.stop_price or leg.limit_price or armed.entry.price_floor,
            signal_time=leg.signal_time,
            at=now,
            limit_price=leg.limit_price,
            stop_price=leg.stop_price,
            reason=reason,
        )
        status = OrderStatus(leg.order_id, leg.symbol, leg.quantity)
        await _outbox(
            unit,
            context,
            OrderStatusChanged(
                order_id=leg.order_id,
                symbol=leg.symbol,
                state=OrderState.NEW,
                previous_state=None,
                filled_quantity=0.0,
                remaining_quantity=leg.quantity,
                reason=reason,
                changed_at=now,
            ),
            cause,
        )
        entered.append(OrderState.NEW)
        transition = status.move(OrderState.SUBMITTED, f"{reason} working at the broker", now)
        await _record_transition(unit, context, transition.event, cause, entered)
