"""Every exchange name, routing key and queue name the system uses: the one place they live.

Routing keys are a public contract (other systems subscribe to them); see proto/asyncapi.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tai_events.alerts import AlertRaised
from tai_events.base import Command, Message
from tai_events.control import ConfigureStrategy, FlattenPositions, HaltTrading, ResumeTrading
from tai_events.market import BarClosed, TickReceived, Timeframe
from tai_events.ml import ModelPromoted, ModelRetrainingRequested, PredictionMade
from tai_events.orders import (
    FillExecuted,
    OrderApproved,
    OrderRejected,
    OrderRequested,
    OrderState,
    OrderStatusChanged,
    PositionUpdated,
    SignalGenerated,
)
from tai_events.research import ResearchRunFinished
from tai_events.risk import RiskLimitsPublished, RiskStateChanged
from tai_events.strategies import StrategyParametersUpdated

EVENTS_EXCHANGE = "tai.events"
"""Durable topic exchange for every event."""
CONTROL_EXCHANGE = "tai.control"
"""Durable topic exchange for commands (only the gateway and risk may publish)."""
DEAD_LETTER_EXCHANGE = "tai.dead-letter"
"""Topic exchange receiving rejected, undecodable and poison messages."""
DEAD_LETTER_QUEUE = "tai.dead-letter"
"""The one queue holding dead letters, with their reason in a header."""

REQUEUE_QUEUE = "tai.dead-letter.requeue"
"""Takes a dead letter back to the queue it died in, by the broker's hand: bound to the
dead-letter exchange with REQUEUE_ROUTING_KEY, its messages expire at once and the broker
dead-letters them to the default exchange, which routes each to the queue named in its CC
header. Whoever may publish on the dead-letter exchange can requeue; nobody needs the right
to publish the dead letter's own routing key."""
REQUEUE_ROUTING_KEY = "requeue.request"
"""The CC key that routes a copy of a dead letter into REQUEUE_QUEUE (no queue has this name)."""
HISTORY_STREAM = "tai.history"
"""RabbitMQ stream keeping every public event (retention by age and size) for replays."""

DEAD_LETTER_REASON_HEADER = "x-tai-dead-letter-reason"
DEAD_LETTER_QUEUE_HEADER = "x-tai-dead-letter-queue"

ORDER_REQUESTED = "order.requested"
ORDER_APPROVED = "order.approved"
ORDER_REJECTED = "order.rejected"
EXECUTION_FILL = "execution.fill"
POSITION_UPDATED = "position.updated"
RISK_STATE = "risk.state"
RISK_LIMITS = "risk.limits"
MODEL_PROMOTED = "model.promoted"
STRATEGY_PARAMS_UPDATED = "strategy.params.updated"

CONTROL_HALT = "control.halt"
CONTROL_RESUME = "control.resume"
CONTROL_FLATTEN = "control.flatten"
CONTROL_STRATEGY = "control.strategy"

ALL_MARKET_BARS = "market.bar.#"
ALL_TICKS = "market.tick.*"
ALL_PREDICTIONS = "ml.prediction.*"
ALL_ORDER_STATES = "order.*"
ALL_ALERTS = "alert.*"
ALL_CONTROL = "control.*"
ALL_RETRAINING_REQUESTS = "model.retraining.*"
ALL_RESEARCH_RUNS = "research.run.*"
EVERYTHING = "#"


def _public_topics() -> tuple[str, ...]:
    order_states = sorted({f"order.{state.value.lower()}" for state in OrderState})
    topics = {
        "market.#",
        "ml.#",
        "signal.#",
        ORDER_REQUESTED,
        ORDER_REJECTED,
        *order_states,
        "execution.#",
        "position.#",
        "risk.#",
        "alert.#",
        "model.#",
        "strategy.#",
        "research.#",
    }
    return tuple(sorted(topics))


PUBLIC_TOPICS = _public_topics()
"""Binding keys covering every event an outside system may read: all but ``order.approved``.

Approvals go to execution alone; these patterns are written so that none of them matches
``order.approved`` (no ``order.#`` or ``order.*``), and the history stream binds exactly them.
"""


def market_tick(symbol: str) -> str:
    """Return the routing key of a symbol's ticks."""
    return f"market.tick.{symbol}"


def market_bar(timeframe: Timeframe | str, symbol: str) -> str:
    """Return the routing key of a symbol's bars of one timeframe."""
    return f"market.bar.{Timeframe(timeframe).value}.{symbol}"


def market_bars(timeframe: Timeframe | str) -> str:
    """Return the binding pattern of every symbol's bars of one timeframe."""
    return f"market.bar.{Timeframe(timeframe).value}.*"


def ml_prediction(symbol: str) -> str:
    """Return the routing key of a symbol's predictions."""
    return f"ml.prediction.{symbol}"


def model_retraining(symbol: str) -> str:
    """Return the routing key of a symbol's retraining requests."""
    return f"model.retraining.{symbol}"


def research_run(kind: str) -> str:
    """Return the routing key of a finished research run of one kind."""
    return f"research.run.{kind}"


def signal(strategy: str, symbol: str) -> str:
    """Return the routing key of a strategy's signals for a symbol."""
    return f"signal.{strategy}.{symbol}"


def order_state(state: str) -> str:
    """Return the routing key of an order state change (``order.filled`` ...)."""
    return f"order.{state.lower()}"


def alert(severity: str) -> str:
    """Return the routing key of an alert of one severity."""
    return f"alert.{severity}"


def queue_name(service: str, purpose: str) -> str:
    """Return the durable queue name a service consumes for one purpose."""
    return f"tai.{service}.{purpose}"


_ROUTES: dict[type[Message], Callable[[Any], str]] = {
    BarClosed: lambda message: market_bar(message.timeframe, message.symbol),
    TickReceived: lambda message: market_tick(message.symbol),
    PredictionMade: lambda message: ml_prediction(message.symbol),
    SignalGenerated: lambda message: signal(message.strategy, message.symbol),
    OrderRequested: lambda _message: ORDER_REQUESTED,
    OrderApproved: lambda _message: ORDER_APPROVED,
    OrderRejected: lambda _message: ORDER_REJECTED,
    OrderStatusChanged: lambda message: order_state(message.state.value),
    FillExecuted: lambda _message: EXECUTION_FILL,
    PositionUpdated: lambda _message: POSITION_UPDATED,
    RiskStateChanged: lambda _message: RISK_STATE,
    RiskLimitsPublished: lambda _message: RISK_LIMITS,
    AlertRaised: lambda message: alert(message.severity.value),
    ModelPromoted: lambda _message: MODEL_PROMOTED,
    ModelRetrainingRequested: lambda message: model_retraining(message.symbol),
    ResearchRunFinished: lambda message: research_run(message.kind),
    StrategyParametersUpdated: lambda _message: STRATEGY_PARAMS_UPDATED,
    HaltTrading: lambda _message: CONTROL_HALT,
    ResumeTrading: lambda _message: CONTROL_RESUME,
    FlattenPositions: lambda _message: CONTROL_FLATTEN,
    ConfigureStrategy: lambda _message: CONTROL_STRATEGY,
}


def routing_key_for(message: Message) -> str:
    """Return the routing key a message is published with."""
    route = _ROUTES.get(type(message))
    if route is None:
        raise TypeError(f"no routing key registered for {type(message).__name__}")
    return route(message)


def exchange_for(message: Message) -> str:
    """Return the exchange a message is published on."""
    return CONTROL_EXCHANGE if isinstance(message, Command) else EVENTS_EXCHANGE


ROUTING_KEY_PATTERNS: dict[str, str] = {
    "BarClosed": "market.bar.{timeframe}.{symbol}",
    "TickReceived": "market.tick.{symbol}",
    "PredictionMade": "ml.prediction.{symbol}",
    "SignalGenerated": "signal.{strategy}.{symbol}",
    "OrderRequested": ORDER_REQUESTED,
    "OrderApproved": ORDER_APPROVED,
    "OrderRejected": ORDER_REJECTED,
    "OrderStatusChanged": "order.{state}",
    "FillExecuted": EXECUTION_FILL,
    "PositionUpdated": POSITION_UPDATED,
    "RiskStateChanged": RISK_STATE,
    "RiskLimitsPublished": RISK_LIMITS,
    "AlertRaised": "alert.{severity}",
    "ModelPromoted": MODEL_PROMOTED,
    "ModelRetrainingRequested": "model.retraining.{symbol}",
    "ResearchRunFinished": "research.run.{kind}",
    "StrategyParametersUpdated": STRATEGY_PARAMS_UPDATED,
    "HaltTrading": CONTROL_HALT,
    "ResumeTrading": CONTROL_RESUME,
    "FlattenPositions": CONTROL_FLATTEN,
    "ConfigureStrategy": CONTROL_STRATEGY,
}
"""Routing-key templates per message type, for the published AsyncAPI document."""
