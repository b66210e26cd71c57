"""Intraday: 15-60 minute trend following.

The trend is EMA(``fast_period``) against EMA(``slow_period``); it must be strong (ADX(14) at
least ``min_adx`` with the matching directional index on top). The entry fires when the MACD
histogram crosses zero in the trend's direction — momentum resuming after a pullback — and RSI
is not already stretched (below ``rsi_ceiling`` for longs, above ``100 - rsi_ceiling`` for
shorts). Exits: stop 1.5 ATR(14), target 3 ATR; risk 1-2 % per trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, model_validator

from tai_events.market import BarClosed
from tai_events.orders import SignalDirection, TradingStyle
from tai_quant.indicators import (
    AverageDirectionalIndex,
    ExponentialMovingAverage,
    MovingAverageConvergenceDivergence,
    RelativeStrengthIndex,
)
from tai_strategy.bracket import BracketParameters, BracketStrategy, Signal


class IntradayParameters(BracketParameters):
    """Intraday trend-following defaults (the documented live defaults)."""

    RISK_RANGE_PCT: ClassVar[tuple[float, float]] = (1.0, 2.0)
    STYLE: ClassVar[TradingStyle | None] = TradingStyle.INTRADAY

    risk_per_trade_pct: float = Field(default=1.5, description="1-2 % of equity per trade")
    stop_atr: float = Field(default=1.5, gt=0)
    take_profit_atr: float = Field(default=3.0, gt=0)
    max_holding_bars: int = Field(default=48, ge=0)
    fast_period: int = Field(default=20, ge=1, le=1000, description="fast EMA length")
    slow_period: int = Field(default=50, ge=2, le=2000, description="slow EMA length")
    adx_period: int = Field(default=14, ge=2, le=500)
    min_adx: float = Field(default=20.0, ge=0, le=100, description="trend strength floor")
    macd_fast: int = Field(default=12, ge=1)
    macd_slow: int = Field(default=26, ge=2)
    macd_signal: int = Field(default=9, ge=1)
    rsi_period: int = Field(default=14, ge=2, le=500)
    rsi_ceiling: float = Field(default=70.0, gt=50, le=100, description="no longs above it")

    @model_validator(mode="after")
    def _ordered_periods(self) -> IntradayParameters:
        if self.fast_period >= self.slow_period:
            raise ValueError("fast_period must be shorter than slow_period")
        if self.macd_fast >= self.macd_slow:
            raise ValueError("macd_fast must be shorter than macd_slow")
        return self


@dataclass(slots=True)
class _IntradayIndicators:
    fast: ExponentialMovingAverage
    slow: ExponentialMovingAverage
    adx: AverageDirectionalIndex
    macd: MovingAverageConvergenceDivergence
    rsi: RelativeStrengthIndex
    previous_histogram: float | None = None


class IntradayStrategy(BracketStrategy[IntradayParameters]):
    """Join a strong EMA trend when the MACD histogram turns back its way."""

    name = "intraday"
    parameters_type = IntradayParameters

    def __init__(self, parameters: IntradayParameters | None = None) -> None:
        super().__init__(parameters or IntradayParameters())

    def _new_indicators(self) -> _IntradayIndicators:
        values = self.parameters
        return _IntradayIndicators(
            fast=ExponentialMovingAverage(values.fast_period),
            slow=ExponentialMovingAverage(values.slow_period),
            adx=AverageDirectionalIndex(values.adx_period),
            macd=MovingAverageConvergenceDivergence(
                values.macd_fast, values.macd_slow, values.macd_signal
            ),
            rsi=RelativeStrengthIndex(values.rsi_period),
        )

    def _update(self, indicators: _IntradayIndicators, bar: BarClosed) -> Signal | None:
        values = self.parameters
        fast = indicators.fast.update(bar.close)
        slow = indicators.slow.update(bar.close)
        indicators.adx.update(bar.high, bar.low, bar.close)
        rsi_value = indicators.rsi.update(bar.close)
        indicators.macd.update(bar.close)
        macd_values = indicators.macd.values
        previous = indicators.previous_histogram
        histogram = macd_values.histogram if macd_values is not None else None
        indicators.previous_histogram = histogram
        strength = indicators.adx.values
        if (
            fast is None
            or slow is None
            or strength is None
            or rsi_value is None
            or histogram is None
            or previous is None
            or strength.adx < values.min_adx
        ):
            return None
        if fast > slow and strength.plus_di > strength.minus_di:
            direction = SignalDirection.LONG
            triggered = previous < 0 <= histogram and rsi_value < values.rsi_ceiling
        elif fast < slow and strength.minus_di > strength.plus_di:
            direction = SignalDirection.SHORT
            triggered = previous > 0 >= histogram and rsi_value > 100 - values.rsi_ceiling
        else:
            return None
        if not triggered:
            return None
        long = direction is SignalDirection.LONG
        # Stronger trends earn more confidence, up to 0.9 at ADX 60.
        confidence = 0.5 + min(0.4, max(0.0, strength.adx - values.min_adx) / 100.0)
        reason = (
            f"EMA({values.fast_period}) {fast:.6g} {'above' if long else 'below'} "
            f"EMA({values.slow_period}) {slow:.6g}, ADX({values.adx_period}) "
            f"{strength.adx:.1f} >= {values.min_adx:g}, MACD histogram crossed "
            f"{'above' if long else 'below'} zero ({histogram:.3g}), RSI {rsi_value:.1f}"
        )
        return Signal(direction, confidence, reason)
