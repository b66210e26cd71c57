"""Bus <-> strategy glue: decode a message, ask the pure strategy book, publish what it wants."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tai_bus.api import MessageBus, PermanentHandlerError
from tai_core.clock import Clock
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.control import ConfigureStrategy
from tai_events.headers import MessageHeaders
from tai_events.market import BarClosed, Timeframe
from tai_events.ml import PredictionMade
from tai_events.orders import (
    FillExecuted,
    OrderRejected,
    OrderRequested,
    OrderState,
    OrderStatusChanged,
)
from tai_events.strategies import StrategyParametersUpdated
from tai_strategy.base import OrderIntent
from tai_strategy.book import InvalidConfigurationError, StrategyBook
from tai_strategy.positions import PositionBook, order_id_for

PRODUCER = "strategy"


@dataclass
class StrategyContext:
    """What the strategy handlers need."""

    book: StrategyBook
    bus: MessageBus
    clock: Clock
    positions: PositionBook = field(default_factory=PositionBook)


def order_request_from(
    intent: OrderIntent,
    strategy: str,
    bar: BarClosed,
    now: datetime,
) -> OrderRequested:
    """Return the order request for an intent; its id depends only on the bar and the intent."""
    return order_request_at(intent, strategy, bar.timeframe, bar.closed_at, now)


def order_request_at(
    intent: OrderIntent,
    strategy: str,
    timeframe: Timeframe,
    signal_time: datetime,
    now: datetime,
) -> OrderRequested:
    """Return the order request for an intent decided at ``signal_time`` (a bar's close)."""
    return OrderRequested(
        order_id=order_id_for(strategy, intent.symbol, timeframe, signal_time, intent.side),
        strategy=strategy,
        symbol=intent.symbol,
        side=intent.side,
        quantity=intent.quantity,
        reference_price=intent.reference_price,
        signal_time=signal_time,
        requested_at=now,
        confidence=intent.confidence,
        win_probability=intent.win_probability,
        style=intent.style,
        risk_budget_pct=intent.risk_budget_pct,
        reduce_only=intent.reduce_only,
        reason=intent.reason[:2000],
        stop_loss=intent.stop_loss,
        take_profit=intent.take_profit,
    )


async def _send(
    context: StrategyContext,
    orders: list[tuple[str, OrderIntent]],
    timeframe: Timeframe,
    signal_time: datetime,
    cause: MessageHeaders,
) -> None:
    """Publish the strategies' orders: entries as intents, exits sized to what is held."""
    positions = context.positions
    for strategy, intent in orders:
        chosen: OrderIntent | None = intent
        if positions.depends_on_position(intent):
            exit_order = positions.exit_for(strategy, intent, timeframe, signal_time)
            # None: it waits for its entry's outcome, or nothing is held to close
            chosen = None if exit_order is None else exit_order.intent
        elif positions.has_pending(strategy, intent.symbol):
            positions.defer(strategy, intent, timeframe, signal_time)  # behind the exit
            chosen = None
        if chosen is not None:
            await _publish(context, strategy, chosen, timeframe, signal_time, cause)


async def _publish(
    context: StrategyContext,
    strategy: str,
    intent: OrderIntent,
    timeframe: Timeframe,
    signal_time: datetime,
    cause: MessageHeaders,
) -> None:
    request = order_request_at(intent, strategy, timeframe, signal_time, context.clock.now())
    context.positions.sent(
        request.order_id, strategy, request.symbol, request.side, reduce_only=request.reduce_only
    )
    await context.bus.publish(request, cause=cause)


async def on_bar_closed(envelope: Envelope[Message], context: StrategyContext) -> None:
    """Run the strategies on a closed bar and publish their order requests."""
    bar = envelope.message
    if not isinstance(bar, BarClosed):
        return
    orders = context.book.on_bar(bar)
    if orders:
        await _send(context, orders, bar.timeframe, bar.closed_at, envelope.headers)


async def on_prediction_made(envelope: Envelope[Message], context: StrategyContext) -> None:
    """Update the symbol's regime and publish what prediction-driven strategies want."""
    prediction = envelope.message
    if not isinstance(prediction, PredictionMade):
        return
    orders = context.book.on_prediction(prediction)
    if orders:
        await _send(
            context, orders, prediction.timeframe, prediction.bar_closed_at, envelope.headers
        )


async def on_order_outcome(envelope: Envelope[Message], context: StrategyContext) -> None:
    """Apply a fill, a rejection or a terminal order state; send the exits it released."""
    message = envelope.message
    positions = context.positions
    if isinstance(message, FillExecuted):
        released = positions.on_fill(
            message.fill_id,
            message.order_id,
            message.strategy,
            message.symbol,
            message.side,
            message.quantity,
        )
    elif isinstance(message, OrderRejected):
        released = positions.on_order_ended(message.order_id, OrderState.REJECTED)
    elif isinstance(message, OrderStatusChanged):
        released = positions.on_order_ended(
            message.order_id, message.state, message.filled_quantity
        )
    else:
        return
    for exit_order in released:
        await _publish(
            context,
            exit_order.strategy,
            exit_order.intent,
            exit_order.timeframe,
            exit_order.signal_time,
            envelope.headers,
        )


async def on_configure_strategy(envelope: Envelope[Message], context: StrategyContext) -> None:
    """Enable, disable or re-parameterise a strategy and announce its new settings."""
    command = envelope.message
    if not isinstance(command, ConfigureStrategy):
        return
    try:
        slot = context.book.configure(command.strategy, command.enabled, command.parameters)
    except InvalidConfigurationError as error:
        # Retrying cannot make an invalid configuration valid: dead-letter it with the reason.
        raise PermanentHandlerError(str(error)) from error
    event = StrategyParametersUpdated(
        strategy=command.strategy,
        enabled=slot.enabled,
        parameters=slot.status(),
        updated_at=context.clock.now(),
        updated_by=command.requested_by,
    )
    await context.bus.publish(event, cause=envelope.headers)
