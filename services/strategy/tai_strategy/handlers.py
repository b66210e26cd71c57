"""Bus <-> strategy glue: decode a bar, ask the pure strategy, publish its order requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_core.ids import deterministic_id
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.market import BarClosed
from tai_events.orders import OrderRequested
from tai_strategy.base import OrderIntent, Strategy


@dataclass
class StrategyContext:
    """What the strategy handlers need."""

    strategy: Strategy
    bus: MessageBus
    clock: Clock


def order_request_from(
    intent: OrderIntent, strategy: str, bar: BarClosed, now: datetime
) -> OrderRequested:
    """Return the order request for an intent; its id depends only on the bar and the intent."""
    order_id = deterministic_id(
        "ord",
        strategy,
        intent.symbol,
        bar.timeframe.value,
        bar.closed_at.isoformat(),
        intent.side.value,
    )
    return OrderRequested(
        order_id=order_id,
        strategy=strategy,
        symbol=intent.symbol,
        side=intent.side,
        quantity=intent.quantity,
        reference_price=intent.reference_price,
        signal_time=bar.closed_at,
        requested_at=now,
        confidence=intent.confidence,
        reason=intent.reason,
        stop_loss=intent.stop_loss,
        take_profit=intent.take_profit,
    )


async def on_bar_closed(envelope: Envelope[Message], context: StrategyContext) -> None:
    """Run the strategy on a closed bar and publish any order requests."""
    bar = envelope.message
    if not isinstance(bar, BarClosed):
        return
    for intent in context.strategy.on_bar(bar):
        request = order_request_from(intent, context.strategy.name, bar, context.clock.now())
        await context.bus.publish(request, cause=envelope.headers)
