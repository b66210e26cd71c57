"""Trading AI Secure event contract: every message on the bus, its headers and its topics."""

from tai_events.alerts import AlertRaised, Severity
from tai_events.base import Command, Event, Message, utc_now
from tai_events.codec import Envelope, MessageDecodeError, decode, encode, make_headers
from tai_events.control import ConfigureStrategy, FlattenPositions, HaltTrading, ResumeTrading
from tai_events.headers import MessageHeaders, new_message_id
from tai_events.market import BarClosed, TickReceived, Timeframe
from tai_events.ml import ModelPromoted, ModelStage, PredictedClass, PredictionMade
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
from tai_events.risk import RiskLimitsPublished, RiskStateChanged, TradingState
from tai_events.strategies import StrategyParametersUpdated

__all__ = [
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
    "ResumeTrading",
    "RiskLimitsPublished",
    "RiskStateChanged",
    "Severity",
    "Side",
    "SignalDirection",
    "SignalGenerated",
    "StrategyParametersUpdated",
    "TickReceived",
    "Timeframe",
    "TradingState",
    "decode",
    "encode",
    "make_headers",
    "new_message_id",
    "utc_now",
]
