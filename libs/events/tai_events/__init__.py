"""Trading AI Secure event contract: every message on the bus, its headers and its topics."""

from tai_events.alerts import AlertRaised, Severity
from tai_events.base import Command, Event, Message, utc_now
from tai_events.codec import Envelope, MessageDecodeError, decode, encode, make_headers
from tai_events.control import ConfigureStrategy, FlattenPositions, HaltTrading, ResumeTrading
from tai_events.headers import MessageHeaders, new_message_id
from tai_events.market import BarClosed, TickReceived, Timeframe
from tai_events.ml import (
    DEFAULT_TRADE_PLAN,
    ModelPromoted,
    ModelRetrainingRequested,
    ModelStage,
    PredictedClass,
    PredictionMade,
    RetrainingTrigger,
    TradePlan,
)
from tai_events.orders import (
    FillExecuted,
    OrderApproved,
    OrderRejected,
    OrderRequested,
    OrderState,
    OrderStatusChanged,
    OrderType,
    PositionUpdated,
    Side,
    SignalDirection,
    SignalGenerated,
)
from tai_events.registry import MESSAGE_CLASSES, REGISTRY
from tai_events.research import ResearchRunFinished, ResearchRunStatus
from tai_events.risk import RiskLimitsPublished, RiskStateChanged, TradingState
from tai_events.strategies import StrategyParametersUpdated

__all__ = [
    "DEFAULT_TRADE_PLAN",
    "MESSAGE_CLASSES",
    "REGISTRY",
    "AlertRaised",
    "BarClosed",
    "Command",
    "ConfigureStrategy",
    "Envelope",
    "Event",
    "FillExecuted",
    "FlattenPositions",
    "HaltTrading",
    "Message",
    "MessageDecodeError",
    "MessageHeaders",
    "ModelPromoted",
    "ModelRetrainingRequested",
    "ModelStage",
    "OrderApproved",
    "OrderRejected",
    "OrderRequested",
    "OrderState",
    "OrderStatusChanged",
    "OrderType",
    "PositionUpdated",
    "PredictedClass",
    "PredictionMade",
    "ResearchRunFinished",
    "ResearchRunStatus",
    "ResumeTrading",
    "RetrainingTrigger",
    "RiskLimitsPublished",
    "RiskStateChanged",
    "Severity",
    "Side",
    "SignalDirection",
    "SignalGenerated",
    "StrategyParametersUpdated",
    "TickReceived",
    "Timeframe",
    "TradePlan",
    "TradingState",
    "decode",
    "encode",
    "make_headers",
    "new_message_id",
    "utc_now",
]
