"""Scalping: 1-5 minute mean reversion at the Bollinger Bands, confirmed by RSI, MACD and volume.

Long when the close is at or below the lower band (%B <= ``lower_percent_b``) and RSI(14) is at
or below 30; short at or above the upper band with RSI at or above 70. Two confirmations raise
the confidence and at least ``min_confirmations`` of them are required: the MACD(12, 26, 9)
histogram crossed zero in the trade's direction within the last ``macd_cross_lookback`` bars
(momentum turning back), and volume above ``volume_multiple`` x its average over the previous
``volume_period`` bars. Exits: stop 2 ATR(14), target 3 ATR; risk 0.5-1 % per trade.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import Field, model_validator

from tai_events.market import BarClosed
from tai_events.orders import SignalDirection, TradingStyle
from tai_quant.indicators import (
    BollingerBands,
    MovingAverageConvergenceDivergence,
    RelativeStrengthIndex,
    SimpleMovingAverage,
)
from tai_strategy.bracket import BracketParameters, BracketStrategy, Signal


class ScalpingParameters(BracketParameters):
    """Scalping defaults (the documented live defaults)."""

    RISK_RANGE_PCT: ClassVar[tuple[float, float]] = (0.5, 1.0)
    STYLE: ClassVar[TradingStyle | None] = TradingStyle.SCALPING

    risk_per_trade_pct: float = Field(default=0.75, description="0.5-1 % of equity per trade")
    stop_atr: float = Field(default=2.0, gt=0, description="stop-loss distance in ATR(14)")
    take_profit_atr: float = Field(default=3.0, gt=0, description="take-profit in ATR(14)")
    max_holding_bars: int = Field(default=30, ge=0, description="close a stale reversion")
    bollinger_period: int = Field(default=20, ge=2, le=500)
    bollinger_std: float = Field(default=2.0, gt=0)
    lower_percent_b: float = Field(default=0.0, description="%B at or below: oversold")
    upper_percent_b: float = Field(default=1.0, description="%B at or above: overbought")
    rsi_period: int = Field(default=14, ge=2, le=500)
    rsi_oversold: float = Field(default=30.0, ge=0, le=100)
    rsi_overbought: float = Field(default=70.0, ge=0, le=100)
    macd_fast: int = Field(default=12, ge=1)
    macd_slow: int = Field(default=26, ge=2)
    macd_signal: int = Field(default=9, ge=1)
    macd_cross_lookback: int = Field(default=3, ge=1, le=100)
    volume_period: int = Field(default=20, ge=1, le=1000)
    volume_multiple: float = Field(default=1.5, gt=0)
    min_confirmations: int = Field(default=1, ge=0, le=2)

    @model_validator(mode="after")
    def _ordered_levels(self) -> ScalpingParameters:
        if self.rsi_oversold >= self.rsi_overbought:
            raise ValueError("rsi_oversold must be below rsi_overbought")
        if self.lower_percent_b >= self.upper_percent_b:
            raise ValueError("lower_percent_b must be below upper_percent_b")
        if self.macd_fast >= self.macd_slow:
            raise ValueError("macd_fast must be shorter than macd_slow")
        return self


@dataclass(slots=True)
class _ScalpingIndicators:
    bands: BollingerBands
    rsi: RelativeStrengthIndex
    macd: MovingAverageConvergenceDivergence
    volume_average: SimpleMovingAverage
    histograms: deque[float] = field(default_factory=deque)


class ScalpingStrategy(BracketStrategy[ScalpingParameters]):
    """Fade Bollinger Band extremes confirmed by RSI, a MACD histogram cross and volume."""

    name = "scalping"
    parameters_type = ScalpingParameters

    def __init__(self, parameters: ScalpingParameters | None = None) -> None:
        super().__init__(parameters or ScalpingParameters())

    def _new_indicators(self) -> _ScalpingIndicators:
        values = self.parameters
        return _ScalpingIndicators(
            bands=BollingerBands(values.bollinger_period, values.bollinger_std),
            rsi=RelativeStrengthIndex(values.rsi_period),
            macd=MovingAverageConvergenceDivergence(
                values.macd_fast, values.macd_slow, values.macd_signal
            ),
            volume_average=SimpleMovingAverage(values.volume_period),
            histograms=deque(maxlen=values.macd_cross_lookback + 1),
        )

    def _update(self, indicators: _ScalpingIndicators, bar: BarClosed) -> Signal | None:
        values = self.parameters
        # The volume average excludes the current bar, so a spike does not dilute itself.
        previous_volume_average = indicators.volume_average.value
        indicators.volume_average.update(bar.volume)
        indicators.bands.update(bar.close)
        rsi_value = indicators.rsi.update(bar.close)
        indicators.macd.update(bar.close)
        macd_values = indicators.macd.values
        if macd_values is not None:
            indicators.histograms.append(macd_values.histogram)
        bands = indicators.bands.values
        if bands is None or rsi_value is None or macd_values is None:
            return None
        if bands.percent_b <= values.lower_percent_b and rsi_value <= values.rsi_oversold:
            direction = SignalDirection.LONG
        elif bands.percent_b >= values.upper_percent_b and rsi_value >= values.rsi_overbought:
            direction = SignalDirection.SHORT
        else:
            return None
        macd_cross = _histogram_crossed(indicators.histograms, direction)
        volume_spike = (
            previous_volume_average is not None
            and previous_volume_average > 0
            and bar.volume > values.volume_multiple * previous_volume_average
        )
        confirmations = int(macd_cross) + int(volume_spike)
        if confirmations < values.min_confirmations:
            return None
        long = direction is SignalDirection.LONG
        reason = (
            f"close {bar.close:.6g} {'below the lower' if long else 'above the upper'} "
            f"Bollinger({values.bollinger_period}, {values.bollinger_std:g}) band "
            f"(%B {bands.percent_b:.3f}), RSI({values.rsi_period}) {rsi_value:.1f} "
            f"{'<=' if long else '>='} {values.rsi_oversold if long else values.rsi_overbought:g}"
            f"; MACD histogram cross {'yes' if macd_cross else 'no'}"
            f"; volume {'above' if volume_spike else 'not above'} "
            f"{values.volume_multiple:g}x its {values.volume_period}-bar average"
        )
        return Signal(direction, 0.5 + 0.25 * confirmations, reason)


def _histogram_crossed(histograms: deque[float], direction: SignalDirection) -> bool:
    """Return True when the histogram changed sign towards ``direction`` in the window."""
    for previous, current in itertools.pairwise(histograms):
        if direction is SignalDirection.LONG and previous < 0 <= current:
            return True
        if direction is SignalDirection.SHORT and previous > 0 >= current:
            return True
    return False
