"""Swing: 4-hour to daily trend trades confirmed on a higher timeframe.

The higher timeframe (``confirmation_timeframe``, default daily) comes from the bars the system
builds (ingestion aggregates them; the backtester with the same aggregator): each closed higher
bar updates EMA(``higher_period``). The higher trend is up when that close is above the EMA
and the EMA rose; down when below and falling. Entries are EMA(``fast_period``)/EMA(``slow_period``)
crosses on the trading timeframe, taken only in the higher trend's direction and while RSI is
not stretched. Exits: stop 2 ATR(14), target 4 ATR; risk 2-3 % per trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, model_validator

from tai_events.market import BarClosed, Timeframe
from tai_events.orders import SignalDirection, TradingStyle
from tai_quant.indicators import ExponentialMovingAverage, RelativeStrengthIndex
from tai_strategy.bracket import BracketParameters, BracketStrategy, Signal


class SwingParameters(BracketParameters):
    """Swing defaults (the documented live defaults)."""

    RISK_RANGE_PCT: ClassVar[tuple[float, float]] = (2.0, 3.0)
    STYLE: ClassVar[TradingStyle | None] = TradingStyle.SWING

    risk_per_trade_pct: float = Field(default=2.5, description="2-3 % of equity per trade")
    stop_atr: float = Field(default=2.0, gt=0)
    take_profit_atr: float = Field(default=4.0, gt=0)
    max_holding_bars: int = Field(default=60, ge=0)
    fast_period: int = Field(default=10, ge=1, le=1000)
    slow_period: int = Field(default=30, ge=2, le=2000)
    confirmation_timeframe: Timeframe = Field(
        default=Timeframe.D1, description="the higher timeframe that must agree"
    )
    higher_period: int = Field(default=20, ge=1, le=500, description="EMA on the higher bars")
    rsi_period: int = Field(default=14, ge=2, le=500)
    rsi_ceiling: float = Field(default=75.0, gt=50, le=100)

    @model_validator(mode="after")
    def _ordered_periods(self) -> SwingParameters:
        if self.fast_period >= self.slow_period:
            raise ValueError("fast_period must be shorter than slow_period")
        return self


@dataclass(slots=True)
class _SwingIndicators:
    fast: ExponentialMovingAverage
    slow: ExponentialMovingAverage
    rsi: RelativeStrengthIndex
    higher: ExponentialMovingAverage
    higher_trend: SignalDirection = SignalDirection.FLAT
    higher_close: float | None = None
    previous_difference: float | None = None


class SwingStrategy(BracketStrategy[SwingParameters]):
    """Trade EMA crosses that agree with the higher timeframe's trend."""

    name = "swing"
    parameters_type = SwingParameters

    def __init__(self, parameters: SwingParameters | None = None) -> None:
        super().__init__(parameters or SwingParameters())

    def _new_indicators(self) -> _SwingIndicators:
        values = self.parameters
        return _SwingIndicators(
            fast=ExponentialMovingAverage(values.fast_period),
            slow=ExponentialMovingAverage(values.slow_period),
            rsi=RelativeStrengthIndex(values.rsi_period),
            higher=ExponentialMovingAverage(values.higher_period),
        )

    def higher_trend(self, symbol: str) -> SignalDirection:
        """Return the trend of the last completed higher-timeframe bar."""
        book = self._symbols.get(symbol)
        return book.indicators.higher_trend if book else SignalDirection.FLAT

    @property
    def higher_timeframes(self) -> tuple[Timeframe, ...]:
        """Return the timeframe whose trend confirms entries."""
        return (self.parameters.confirmation_timeframe,)

    def on_higher_bar(self, bar: BarClosed) -> None:
        """Update the higher trend from a closed bar of the confirmation timeframe."""
        if bar.timeframe is not self.parameters.confirmation_timeframe:
            return
        indicators = self._book(bar.symbol).indicators
        previous_average = indicators.higher.value
        average = indicators.higher.update(bar.close)
        indicators.higher_close = bar.close
        if average is None or previous_average is None:
            indicators.higher_trend = SignalDirection.FLAT
        elif bar.close > average > previous_average:
            indicators.higher_trend = SignalDirection.LONG
        elif bar.close < average < previous_average:
            indicators.higher_trend = SignalDirection.SHORT
        else:
            indicators.higher_trend = SignalDirection.FLAT

    def _update(self, indicators: _SwingIndicators, bar: BarClosed) -> Signal | None:
        values = self.parameters
        fast = indicators.fast.update(bar.close)
        slow = indicators.slow.update(bar.close)
        rsi_value = indicators.rsi.update(bar.close)
        if fast is None or slow is None or rsi_value is None:
            return None
        difference = fast - slow
        previous = indicators.previous_difference
        indicators.previous_difference = difference
        if previous is None:
            return None
        trend = indicators.higher_trend
        if previous <= 0 < difference and trend is SignalDirection.LONG:
            if rsi_value >= values.rsi_ceiling:
                return None
            direction = SignalDirection.LONG
        elif previous >= 0 > difference and trend is SignalDirection.SHORT:
            if rsi_value <= 100 - values.rsi_ceiling:
                return None
            direction = SignalDirection.SHORT
        else:
            return None
        long = direction is SignalDirection.LONG
        # Confidence grows with how far the higher close sits beyond its EMA (in ATR-free %).
        higher_average = indicators.higher.value or 0.0
        higher_close = indicators.higher_close or higher_average
        stretch = abs(higher_close - higher_average) / higher_average if higher_average else 0.0
        confidence = 0.6 + min(0.3, stretch * 10.0)
        reason = (
            f"EMA({values.fast_period}) crossed {'above' if long else 'below'} "
            f"EMA({values.slow_period}) on {bar.timeframe.value}; "
            f"{values.confirmation_timeframe.value} trend {trend.value} "
            f"(close {higher_close:.6g} vs EMA({values.higher_period}) {higher_average:.6g}); "
            f"RSI {rsi_value:.1f}"
        )
        return Signal(direction, confidence, reason)
