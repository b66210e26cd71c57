"""Risk state events."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tai_events.base import (
    Event,
    FiniteFloat,
    Name,
    NonNegativeAmount,
    ScalarValue,
    ShortText,
    UtcDatetime,
)


class TradingState(StrEnum):
    """What risk admits: everything, only exposure-reducing orders, or nothing."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class RiskStateChanged(Event):
    """Risk's trading state changed, or its snapshot was refreshed."""

    state: TradingState
    previous_state: TradingState | None
    reason: ShortText
    equity: FiniteFloat
    peak_equity: FiniteFloat
    drawdown_pct: NonNegativeAmount
    daily_pnl: FiniteFloat
    changed_at: UtcDatetime
    changed_by: str = "risk"


class BreakerDescription(BaseModel):
    """One circuit breaker as risk applies it: condition, threshold, resulting state, lift."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    breaker: Name
    """The breaker's name (``changed_by`` of its transitions is ``circuit_breaker.<name>``)."""
    condition: ShortText
    """What trips it, in words."""
    setting: Name | None
    """The risk setting holding the threshold (``RISK_<SETTING>``), if the breaker has one."""
    threshold: FiniteFloat | None
    """The threshold in force."""
    moves_to: TradingState
    """The trading state it moves to (never a laxer one)."""
    lifted_by: Literal["next session", "admin resume"]
    """What lifts that state: the next session, or an admin's ResumeTrading."""


class RiskLimitsPublished(Event):
    """The limits and breakers risk enforces, announced at start and periodically.

    What the console and API show as limits comes from here, never from a copy.
    """

    limits: dict[Name, ScalarValue] = Field(default_factory=dict)
    """Every pre-trade limit by setting name; mappings are given as JSON text."""
    breakers: list[BreakerDescription] = Field(default_factory=list)
    published_at: UtcDatetime
    account: str = Field(default="paper", max_length=64)
