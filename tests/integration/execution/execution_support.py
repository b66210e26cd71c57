"""Helpers for execution tests: approvals signed and recorded the way risk does it."""

from __future__ import annotations

from datetime import datetime, timedelta

from tai_core.ids import deterministic_id
from tai_core.signing import ApprovalSigner
from tai_events.orders import OrderApproved, OrderState, OrderType, Side
from tai_store import Store

PLACEHOLDER_SIGNATURE = "A" * 86


def signed_approval(
    signer: ApprovalSigner,
    order_id: str,
    *,
    signal_time: datetime,
    issued_at: datetime,
    side: Side = Side.BUY,
    quantity: float = 1000.0,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    order_type: OrderType = OrderType.MARKET,
    limit_price: float | None = None,
    ttl: timedelta = timedelta(minutes=5),
) -> OrderApproved:
    """Return an approval for ``order_id`` signed with ``signer``."""
    unsigned = OrderApproved(
        approval_id=deterministic_id("apr", order_id),
        order_id=order_id,
        strategy="test",
        symbol="EURUSD",
        side=side,
        quantity=quantity,
        requested_quantity=quantity,
        price_floor=0.5,
        price_ceiling=2.0,
        signal_time=signal_time,
        issued_at=issued_at,
        expires_at=issued_at + ttl,
        stop_loss=stop_loss,
        take_profit=take_profit,
        order_type=order_type,
        limit_price=limit_price,
        key_id="0" * 16,
        signature=PLACEHOLDER_SIGNATURE,
    )
    return signer.sign(unsigned)


async def record_as_risk(store: Store, approval: OrderApproved, at: datetime) -> None:
    """Write the order (NEW) and its approval the way risk does before publishing."""
    async with store.transaction() as unit:
        await unit.orders.add(
            order_id=approval.order_id,
            strategy=approval.strategy,
            symbol=approval.symbol,
            side=approval.side,
            order_type=approval.order_type,
            requested_quantity=approval.requested_quantity,
            approved_quantity=approval.quantity,
            reference_price=1.2,
            signal_time=approval.signal_time,
            at=at,
            state=OrderState.NEW,
            limit_price=approval.limit_price,
            stop_loss=approval.stop_loss,
            take_profit=approval.take_profit,
            reason="approved by risk",
        )
        await unit.approvals.add(approval)
