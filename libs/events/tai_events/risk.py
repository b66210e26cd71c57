"""Risk state events."""

from __future__ import annotations

from enum import StrEnum

from tai_events.base import Event, FiniteFloat, NonNegativeAmount, ShortText, UtcDatetime


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
