"""Market data events: bars and ticks."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Self

from pydantic import model_validator

from tai_events.base import Event, NonNegativeAmount, Price, Symbol, UtcDatetime


class Timeframe(StrEnum):
    """Bar timeframes the system builds and routes."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"

    @property
    def duration(self) -> timedelta:
        """Return the length of one bar of this timeframe."""
        return _DURATIONS[self]


_DURATIONS = {
    Timeframe.M1: timedelta(minutes=1),
    Timeframe.M5: timedelta(minutes=5),
    Timeframe.M15: timedelta(minutes=15),
    Timeframe.H1: timedelta(hours=1),
    Timeframe.H4: timedelta(hours=4),
    Timeframe.D1: timedelta(days=1),
}


class BarClosed(Event):
    """A bar of one timeframe closed; published once, when it closes."""

    symbol: Symbol
    timeframe: Timeframe
    opened_at: UtcDatetime
    closed_at: UtcDatetime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: NonNegativeAmount
    source: str

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.low > min(self.open, self.close) or self.high < max(self.open, self.close):
            raise ValueError(
                f"inconsistent OHLC: low={self.low} open={self.open} close={self.close} "
                f"high={self.high} (need low <= open, close <= high)"
            )
        if self.closed_at - self.opened_at != self.timeframe.duration:
            raise ValueError(
                f"closed_at - opened_at must equal the timeframe {self.timeframe.value}"
            )
        return self


class TickReceived(Event):
    """A quote (bid/ask, optionally last trade) was received from a source."""

    symbol: Symbol
    quoted_at: UtcDatetime
    bid: Price
    ask: Price
    last: Price | None = None
    volume: NonNegativeAmount = 0.0
    source: str

    @model_validator(mode="after")
    def _check_spread(self) -> Self:
        if self.ask < self.bid:
            raise ValueError(f"crossed quote: ask {self.ask} < bid {self.bid}")
        return self

    @property
    def mid(self) -> float:
        """Return the mid price."""
        return (self.bid + self.ask) / 2.0
