"""Bus handlers: one small function per event type, each updating the LiveState."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tai_bus.api import Handler
from tai_events.alerts import AlertRaised
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.market import BarClosed
from tai_events.ml import PredictionMade
from tai_events.orders import (
    FillExecuted,
    OrderRejected,
    OrderStatusChanged,
    PositionUpdated,
    SignalGenerated,
)
from tai_events.risk import RiskLimitsPublished, RiskStateChanged
from tai_events.strategies import StrategyParametersUpdated
from tai_gateway.live import LiveState


def on_fill_executed(message: FillExecuted, state: LiveState) -> None:
    """Show a new fill."""
    state.record_fill(message)


def on_order_status_changed(message: OrderStatusChanged, state: LiveState) -> None:
    """Track an order's state."""
    state.record_order(message)


def on_order_rejected(message: OrderRejected, state: LiveState) -> None:
    """Track a rejected order."""
    state.record_rejection(message)


def on_position_updated(message: PositionUpdated, state: LiveState) -> None:
    """Track a position."""
    state.record_position(message)


def on_risk_state_changed(message: RiskStateChanged, state: LiveState) -> None:
    """Track the trading state (ACTIVE / REDUCING / HALTED)."""
    state.record_risk_state(message)


def on_alert_raised(message: AlertRaised, state: LiveState) -> None:
    """Track an alert."""
    state.record_alert(message)


def on_bar_closed(message: BarClosed, state: LiveState) -> None:
    """Track the latest bar of a symbol."""
    state.record_bar(message)


def on_signal_generated(message: SignalGenerated, state: LiveState) -> None:
    """Mark a strategy signal on the candles."""
    state.record_signal(message)


def on_prediction_made(message: PredictionMade, state: LiveState) -> None:
    """Show a model's latest probabilities and regime."""
    state.record_prediction(message)


def on_risk_limits_published(message: RiskLimitsPublished, state: LiveState) -> None:
    """Show the limits and breakers risk enforces (never a copy of them)."""
    state.record_risk_limits(message)


def on_strategy_parameters_updated(message: StrategyParametersUpdated, state: LiveState) -> None:
    """Show a strategy's current parameters and enabled flag."""
    state.record_strategy(message)


HANDLERS: dict[type[Message], Callable[[Any, LiveState], None]] = {
    FillExecuted: on_fill_executed,
    OrderStatusChanged: on_order_status_changed,
    OrderRejected: on_order_rejected,
    PositionUpdated: on_position_updated,
    RiskStateChanged: on_risk_state_changed,
    AlertRaised: on_alert_raised,
    BarClosed: on_bar_closed,
    SignalGenerated: on_signal_generated,
    PredictionMade: on_prediction_made,
    StrategyParametersUpdated: on_strategy_parameters_updated,
    RiskLimitsPublished: on_risk_limits_published,
}
"""Which handler each event type goes to; other events on the stream are acked and ignored."""


def make_stream_handler(state: LiveState) -> Handler:
    """Return the bus handler of the gateway's stream queue."""

    async def handle(envelope: Envelope[Message]) -> None:
        handler = HANDLERS.get(type(envelope.message))
        if handler is not None:
            handler(envelope.message, state)

    return handle
