"""Bus <-> strategy glue: decode a message, ask the pure strategy book, publish what it wants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tai_bus.api import MessageBus, PermanentHandlerError
from tai_core.clock import Clock
from tai_core.ids import deterministic_id
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.control import ConfigureStrategy
from tai_events.market import BarClosed, Timeframe
from tai_events.ml import PredictionMade
from tai_events.orders import OrderRequested
from tai_events.strategies import StrategyParametersUpdated
from tai_strategy.base import OrderIntent
from tai_strategy.book import InvalidConfigurationError, StrategyBook

PRODUCER = "strategy"


@dataclass
class StrategyContext:
    """What the strategy handlers need."""

    book: StrategyBook
    bus: MessageBus
    clock: Clock


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
    order_id = deterministic_id(
        "ord",
        strategy,
        intent.symbol,
        timeframe.value,
        signal_time.isoformat(),
        intent.side.value,
    )
    return OrderRequested(
        order_id=order_id,
        strategy=strategy,
        symbol=intent.symbol,
        side=intent.side,
        quantity=intent.quantity,
        reference_price=intent.reference_price,
        signal_time=signal_time,
        requested_at=now,
        confidence=intent.confidence,
        reason=intent.reason[:2000],
        stop_loss=intent.stop_loss,
        take_profit=intent.take_profit,
    )


async def on_bar_closed(envelope: Envelope[Message], context: StrategyContext) -> None:
    """Run the strategies on a closed bar and publish their order requests."""
    bar = envelope.message
    if not isinstance(bar, BarClosed):
        return
    for strategy, intent in context.book.on_bar(bar):
        request = order_request_from(intent, strategy, bar, context.clock.now())
        await context.bus.publish(request, cause=envelope.headers)


async def on_prediction_made(envelope: Envelope[Message], context: StrategyContext) -> None:
    """Update the symbol's regime and publish what prediction-driven strategies want."""
    prediction = envelope.message
    if not isinstance(prediction, PredictionMade):
        return
    for strategy, intent in context.book.on_prediction(prediction):
        request = order_request_at(
            intent, strategy, prediction.timeframe, prediction.bar_closed_at, context.clock.now()
        )
        await context.bus.publish(request, cause=envelope.headers)


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
