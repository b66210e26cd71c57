"""Bus <-> execution glue: verify approvals, hand them to the broker, record fills."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tai_bus.api import MessageBus
from tai_core.accounting import Account
from tai_core.clock import Clock
from tai_core.signing import ApprovalVerifier
from tai_events.alerts import AlertRaised, Severity
from tai_events.base import Message
from tai_events.codec import Envelope, make_headers
from tai_events.headers import MessageHeaders
from tai_events.market import BarClosed
from tai_events.orders import (
    FillExecuted,
    OrderApproved,
    OrderState,
    OrderStatusChanged,
    PositionUpdated,
)
from tai_execution.paper import PaperBroker, PaperFill, PaperRejection, WorkingOrder
from tai_execution.verification import check_approval
from tai_store import Store, UnitOfWork
from tai_store.outbox import OutboxRelay
from tai_telemetry.tracing import inject_traceparent

CONSUMER = "execution"
BROKER_NAME = "paper"


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
    marks: dict[str, float] = field(default_factory=dict)
    relay_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def _outbox(
    unit: UnitOfWork, context: ExecutionContext, message: Message, cause: MessageHeaders | None
) -> None:
    headers = make_headers(
        message,
        producer=CONSUMER,
        occurred_at=context.clock.now(),
        cause=cause,
        traceparent=inject_traceparent(),
    )
    await unit.outbox.add(message, headers)


async def publish_outbox(context: ExecutionContext) -> None:
    """Publish what committed transactions left in the outbox (one relay at a time)."""
    async with context.relay_lock:
        await context.relay.publish_pending()


def working_order_from(approval: OrderApproved) -> WorkingOrder:
    """Return the broker order an approval authorises."""
    return WorkingOrder(
        order_id=approval.order_id,
        strategy=approval.strategy,
        symbol=approval.symbol,
        side=approval.side,
        quantity=approval.quantity,
        signal_time=approval.signal_time,
        price_floor=approval.price_floor,
        price_ceiling=approval.price_ceiling,
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
    async with context.store.transaction() as unit:
        if not await unit.inbox.claim(CONSUMER, envelope.headers.message_id, now):
            return
        if not await unit.approvals.consume(approval.approval_id, now):
            replayed = True
        else:
            replayed = False
            await unit.orders.set_state(
                approval.order_id,
                OrderState.SUBMITTED.value,
                at=now,
                reason="submitted to paper broker",
            )
            await _outbox(
                unit,
                context,
                OrderStatusChanged(
                    order_id=approval.order_id,
                    symbol=approval.symbol,
                    state=OrderState.SUBMITTED,
                    previous_state=OrderState.NEW,
                    filled_quantity=0.0,
                    remaining_quantity=approval.quantity,
                    reason="submitted to paper broker",
                    changed_at=now,
                ),
                envelope.headers,
            )
    if replayed:
        await _refuse(
            context,
            envelope,
            approval,
            "approval_replayed",
            "approval is unknown to the ledger or was already used",
        )
        return
    await publish_outbox(context)
    result = context.broker.submit(working_order_from(approval))
    if result is not None:
        await record_results(context, [result], envelope.headers)


async def on_bar_closed(envelope: Envelope[Message], context: ExecutionContext) -> None:
    """Fill working orders at this bar's open and mark the account to its close."""
    bar = envelope.message
    if not isinstance(bar, BarClosed):
        return
    results = context.broker.on_bar(bar)
    if results:
        await record_results(context, results, envelope.headers)
    context.marks[bar.symbol] = bar.close
    async with context.store.transaction() as unit:
        await unit.snapshots.add(
            context.account_name,
            bar.closed_at,
            context.account.cash,
            context.account.equity(context.marks),
        )


async def record_results(
    context: ExecutionContext,
    results: list[PaperFill | PaperRejection],
    cause: MessageHeaders | None,
) -> None:
    """Write fills (or broker rejections), positions and their events in one transaction."""
    now = context.clock.now()
    account = context.account
    async with context.store.transaction() as unit:
        for result in results:
            order = result.order
            if isinstance(result, PaperRejection):
                await unit.orders.set_state(
                    order.order_id, OrderState.REJECTED.value, at=now, reason=result.reason
                )
                await _outbox(
                    unit,
                    context,
                    OrderStatusChanged(
                        order_id=order.order_id,
                        symbol=order.symbol,
                        state=OrderState.REJECTED,
                        previous_state=OrderState.SUBMITTED,
                        filled_quantity=0.0,
                        remaining_quantity=order.quantity,
                        reason=result.reason,
                        changed_at=now,
                    ),
                    cause,
                )
                continue
            fill = FillExecuted(
                fill_id=result.fill_id,
                order_id=order.order_id,
                strategy=order.strategy,
                symbol=order.symbol,
                side=order.side,
                quantity=order.quantity,
                price=result.price,
                commission=result.commission,
                filled_at=result.filled_at,
                broker=BROKER_NAME,
            )
            if not await unit.fills.add(fill):
                continue
            account, position, _realized = account.apply_fill(
                order.symbol, order.side.sign * order.quantity, result.price, result.commission
            )
            mark = result.price
            await unit.orders.set_state(
                order.order_id,
                OrderState.FILLED.value,
                at=now,
                reason="filled",
                filled_quantity=order.quantity,
                average_fill_price=result.price,
            )
            await unit.positions.upsert(
                account=context.account_name,
                symbol=order.symbol,
                quantity=position.quantity,
                average_price=position.average_price,
                realized_pnl=position.realized_pnl,
                last_price=mark,
                at=result.filled_at,
            )
            await _outbox(unit, context, fill, cause)
            await _outbox(
                unit,
                context,
                OrderStatusChanged(
                    order_id=order.order_id,
                    symbol=order.symbol,
                    state=OrderState.FILLED,
                    previous_state=OrderState.SUBMITTED,
                    filled_quantity=order.quantity,
                    remaining_quantity=0.0,
                    reason="filled",
                    changed_at=now,
                ),
                cause,
            )
            await _outbox(
                unit,
                context,
                PositionUpdated(
                    symbol=order.symbol,
                    quantity=position.quantity,
                    average_price=position.average_price,
                    realized_pnl=position.realized_pnl,
                    unrealized_pnl=position.unrealized_pnl(mark),
                    mark_price=mark,
                    updated_at=result.filled_at,
                ),
                cause,
            )
    context.account = account
    await publish_outbox(context)
