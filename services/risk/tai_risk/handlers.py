"""Bus <-> risk glue: one small function per message type; decisions stay in the engine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from tai_bus.api import MessageBus
from tai_core.accounting import Account
from tai_core.clock import Clock
from tai_core.ids import deterministic_id
from tai_core.signing import UNSIGNED_KEY_ID, UNSIGNED_SIGNATURE
from tai_events.alerts import AlertRaised, Severity
from tai_events.base import Message
from tai_events.codec import Envelope, make_headers
from tai_events.control import FlattenPositions, HaltTrading, ResumeTrading
from tai_events.headers import MessageHeaders
from tai_events.market import BarClosed
from tai_events.orders import (
    FillExecuted,
    OrderApproved,
    OrderRequested,
    OrderState,
    OrderStatusChanged,
    Side,
)
from tai_events.risk import RiskStateChanged, TradingState
from tai_risk.engine import Decision, RiskEngine
from tai_risk.state import PortfolioState, TradingStateMachine
from tai_store import Store, UnitOfWork
from tai_store.outbox import OutboxRelay
from tai_telemetry.tracing import inject_traceparent

CONSUMER = "risk"


@dataclass
class RiskContext:
    """Everything the risk handlers touch."""

    engine: RiskEngine
    portfolio: PortfolioState
    trading: TradingStateMachine
    account: Account
    store: Store
    bus: MessageBus
    relay: OutboxRelay
    clock: Clock
    account_name: str
    peak_equity: float
    relay_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def equity(self) -> float:
        """Return the account's equity at the last prices."""
        return self.account.equity(self.portfolio.last_prices)


async def _outbox(
    unit: UnitOfWork, context: RiskContext, message: Message, cause: MessageHeaders | None
) -> None:
    headers = make_headers(
        message,
        producer=CONSUMER,
        occurred_at=context.clock.now(),
        cause=cause,
        traceparent=inject_traceparent(),
    )
    await unit.outbox.add(message, headers)


async def publish_outbox(context: RiskContext) -> None:
    """Publish what committed transactions left in the outbox (one relay at a time)."""
    async with context.relay_lock:
        await context.relay.publish_pending()


def _decision_details(decision: Decision) -> dict[str, object]:
    return {
        "request": decision.request.model_dump(mode="json"),
        "verdicts": [
            {"rule": v.rule, "passed": v.passed, "reason": v.reason, "values": v.values}
            for v in decision.verdicts
        ],
        "approved_quantity": decision.approval.quantity if decision.approval else None,
    }


async def on_order_requested(envelope: Envelope[Message], context: RiskContext) -> None:
    """Decide on an order request, record it with its event, then publish."""
    request = envelope.message
    if not isinstance(request, OrderRequested):
        return
    now = context.clock.now()
    context.portfolio.equity = context.equity()
    decision = context.engine.check(request, context.portfolio, context.trading.state)
    async with context.store.transaction() as unit:
        if not await unit.inbox.claim(CONSUMER, envelope.headers.message_id, now):
            return
        outcome = "approved" if decision.approved else "rejected"
        if decision.rule == "duplicate_order":
            outcome = "duplicate_ignored"
        else:
            await unit.orders.add(
                order_id=request.order_id,
                strategy=request.strategy,
                symbol=request.symbol,
                side=request.side.value,
                order_type=request.order_type.value,
                requested_quantity=request.quantity,
                approved_quantity=decision.approval.quantity if decision.approval else None,
                limit_price=request.limit_price,
                stop_price=request.stop_price,
                stop_loss=request.stop_loss,
                take_profit=request.take_profit,
                reference_price=request.reference_price,
                state=(OrderState.NEW if decision.approved else OrderState.REJECTED).value,
                signal_time=request.signal_time,
                at=now,
                reason=decision.rejection.reason if decision.rejection else "approved by risk",
            )
            if decision.approval is not None:
                await unit.approvals.add(decision.approval)
                await _outbox(unit, context, decision.approval, envelope.headers)
            elif decision.rejection is not None:
                await _outbox(unit, context, decision.rejection, envelope.headers)
        await unit.audit.record(
            actor=CONSUMER,
            action="risk.decision",
            subject=request.order_id,
            outcome=outcome,
            details=_decision_details(decision),
            at=now,
        )
    context.portfolio.decided_order_ids.add(request.order_id)
    if decision.approval is not None:
        context.portfolio.record_approval(request.symbol, request.side, decision.approval.quantity)
    await publish_outbox(context)


async def on_bar_closed(envelope: Envelope[Message], context: RiskContext) -> None:
    """Track the last price per symbol (fat-finger checks and mark-to-market)."""
    bar = envelope.message
    if isinstance(bar, BarClosed):
        context.portfolio.last_prices[bar.symbol] = bar.close
        context.peak_equity = max(context.peak_equity, context.equity())


async def on_fill_executed(envelope: Envelope[Message], context: RiskContext) -> None:
    """Apply a fill to risk's account (equity for the next decisions)."""
    fill = envelope.message
    if not isinstance(fill, FillExecuted):
        return
    async with context.store.transaction() as unit:
        if not await unit.inbox.claim(CONSUMER, envelope.headers.message_id, context.clock.now()):
            return
    context.account, _position, _realized = context.account.apply_fill(
        fill.symbol, fill.side.sign * fill.quantity, fill.price, fill.commission
    )


async def on_order_status_changed(envelope: Envelope[Message], context: RiskContext) -> None:
    """Release the unfilled part of an order that ended without filling completely."""
    change = envelope.message
    if not isinstance(change, OrderStatusChanged) or change.state not in {
        OrderState.CANCELLED,
        OrderState.EXPIRED,
        OrderState.REJECTED,
    }:
        return
    async with context.store.transaction() as unit:
        if not await unit.inbox.claim(CONSUMER, envelope.headers.message_id, context.clock.now()):
            return
        order = await unit.orders.get(change.order_id)
    if order is None or order.approved_quantity is None:
        return
    unfilled = order.approved_quantity - change.filled_quantity
    side = Side(order.side)
    context.portfolio.projected_positions[order.symbol] = (
        context.portfolio.projected_quantity(order.symbol) - side.sign * unfilled
    )


async def change_trading_state(
    context: RiskContext,
    target: TradingState,
    reason: str,
    changed_by: str,
    cause: MessageHeaders | None,
    severity: Severity,
) -> None:
    """Move the trading state, record and audit it, and publish risk.state and an alert."""
    now = context.clock.now()
    previous = context.trading.transition(target, reason)
    equity = context.equity()
    async with context.store.transaction() as unit:
        await unit.audit.record(
            actor=changed_by,
            action="risk.trading_state",
            subject=target.value,
            outcome="changed" if previous is not None else "unchanged",
            details={"reason": reason, "previous": previous.value if previous else None},
            at=now,
        )
        if previous is None:
            return
        await unit.trading_state.record(target.value, previous.value, reason, changed_by, now)
        peak = max(context.peak_equity, equity)
        await _outbox(
            unit,
            context,
            RiskStateChanged(
                state=target,
                previous_state=previous,
                reason=reason,
                equity=equity,
                peak_equity=peak,
                drawdown_pct=max(0.0, (peak - equity) / peak * 100.0) if peak > 0 else 0.0,
                daily_pnl=0.0,
                changed_at=now,
                changed_by=changed_by,
            ),
            cause,
        )
        await _outbox(
            unit,
            context,
            AlertRaised(
                severity=severity,
                source="risk",
                code="trading_state_changed",
                message=f"trading state {previous.value} -> {target.value}: {reason}",
                details={"changed_by": changed_by},
                raised_at=now,
            ),
            cause,
        )
    await publish_outbox(context)


async def on_control(envelope: Envelope[Message], context: RiskContext) -> None:
    """Apply halt, resume and flatten commands."""
    command = envelope.message
    async with context.store.transaction() as unit:
        if not await unit.inbox.claim(CONSUMER, envelope.headers.message_id, context.clock.now()):
            return
    if isinstance(command, HaltTrading):
        await change_trading_state(
            context,
            TradingState.HALTED,
            command.reason or "kill switch",
            command.requested_by,
            envelope.headers,
            Severity.CRITICAL,
        )
    elif isinstance(command, ResumeTrading):
        await change_trading_state(
            context,
            TradingState.ACTIVE,
            command.reason or "resumed by admin",
            command.requested_by,
            envelope.headers,
            Severity.WARNING,
        )
    elif isinstance(command, FlattenPositions):
        await flatten(context, command, envelope.headers)


async def flatten(context: RiskContext, command: FlattenPositions, cause: MessageHeaders) -> None:
    """Approve closing orders for every projected position (or one symbol's)."""
    now = context.clock.now()
    limits = context.engine.limits
    async with context.store.transaction() as unit:
        for symbol, quantity in sorted(context.portfolio.projected_positions.items()):
            if abs(quantity) < 1e-9 or (command.symbol and symbol != command.symbol):
                continue
            price = context.portfolio.last_prices.get(symbol)
            if price is None:
                continue
            side = Side.SELL if quantity > 0 else Side.BUY
            order_id = deterministic_id("flat", cause.message_id, symbol)
            tolerance = limits.fill_price_tolerance_pct / 100.0
            approval = context.engine.signer.sign(
                OrderApproved(
                    approval_id=deterministic_id("apr", order_id),
                    order_id=order_id,
                    strategy="flatten",
                    symbol=symbol,
                    side=side,
                    quantity=abs(quantity),
                    requested_quantity=abs(quantity),
                    price_floor=price * (1 - tolerance),
                    price_ceiling=price * (1 + tolerance),
                    signal_time=now,
                    issued_at=now,
                    expires_at=now + timedelta(seconds=limits.approval_ttl_seconds),
                    key_id=UNSIGNED_KEY_ID,
                    signature=UNSIGNED_SIGNATURE,
                )
            )
            await unit.orders.add(
                order_id=order_id,
                strategy="flatten",
                symbol=symbol,
                side=side.value,
                order_type="MARKET",
                requested_quantity=abs(quantity),
                approved_quantity=abs(quantity),
                limit_price=None,
                stop_price=None,
                stop_loss=None,
                take_profit=None,
                reference_price=price,
                state=OrderState.NEW.value,
                signal_time=now,
                at=now,
                reason=f"flatten requested by {command.requested_by}",
            )
            await unit.approvals.add(approval)
            await _outbox(unit, context, approval, cause)
            context.portfolio.record_approval(symbol, side, abs(quantity))
        await unit.audit.record(
            actor=command.requested_by,
            action="risk.flatten",
            subject=command.symbol or "*",
            outcome="approved",
            details={"reason": command.reason},
            at=now,
        )
    await publish_outbox(context)
