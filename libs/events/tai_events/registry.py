"""The table of every message type and version the system speaks."""

from __future__ import annotations

from tai_events.alerts import AlertRaised
from tai_events.base import Message
from tai_events.control import ConfigureStrategy, FlattenPositions, HaltTrading, ResumeTrading
from tai_events.market import BarClosed, TickReceived
from tai_events.ml import ModelPromoted, ModelRetrainingRequested, PredictionMade
from tai_events.orders import (
    FillExecuted,
    OrderApproved,
    OrderRejected,
    OrderRequested,
    OrderStatusChanged,
    PositionUpdated,
    SignalGenerated,
)
from tai_events.research import ResearchRunFinished
from tai_events.risk import RiskLimitsPublished, RiskStateChanged
from tai_events.strategies import StrategyParametersUpdated

MESSAGE_CLASSES: tuple[type[Message], ...] = (
    BarClosed,
    TickReceived,
    PredictionMade,
    SignalGenerated,
    OrderRequested,
    OrderApproved,
    OrderRejected,
    OrderStatusChanged,
    FillExecuted,
    PositionUpdated,
    RiskStateChanged,
    RiskLimitsPublished,
    AlertRaised,
    ModelPromoted,
    ModelRetrainingRequested,
    ResearchRunFinished,
    StrategyParametersUpdated,
    HaltTrading,
    ResumeTrading,
    FlattenPositions,
    ConfigureStrategy,
)

REGISTRY: dict[tuple[str, int], type[Message]] = {
    (cls.message_type(), cls.schema_version): cls for cls in MESSAGE_CLASSES
}


def lookup(message_type: str, schema_version: int) -> type[Message] | None:
    """Return the class for a (type, version) pair, or None when unknown."""
    return REGISTRY.get((message_type, schema_version))
