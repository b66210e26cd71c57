"""Momentum indicators: Wilder RSI, Stochastic %K/%D, Williams %R and CCI.

Conventions:

* RSI(n) after Wilder: gains/losses are the positive/negative parts of close-to-close changes;
  their averages are seeded with the simple mean of the first n changes (so the first RSI is at
  index n) and then Wilder-smoothed, ``avg[t] = avg[t-1] + (x[t] - avg[t-1]) / n``.
  ``RSI = 100 - 100 / (1 + avg_gain / avg_loss)``; 100 when avg_loss is 0 and avg_gain > 0, 50
  when both are 0 (no movement at all). ``ta`` seeds with the first change instead; the two
  converge.
* Stochastic(k, d): ``%K = 100 * (close - lowest low) / (highest high - lowest low)`` over the
  last k bars (50 when the range is 0), ``%D`` = SMA(d) of %K; first %D at index k+d-2.
* Williams %R(n) = ``-100 * (highest high - close) / (highest high - lowest low)`` (-50 when the
  range is 0).
* CCI(n, c=0.015): typical price ``tp = (high + low + close) / 3``,
  ``CCI = (tp - SMA(tp)) / (c * mean absolute deviation of tp around its SMA)`` (0 when the
  deviation is 0). The mean absolute deviation has no O(1) update: the streaming CCI does
  O(n) work per bar (constant in the stream length).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tai_quant.indicators._core import (
    FloatArray,
    RollingExtremum,
    RollingMoments,
    SeededExponentialAverage,
    StreamingIndicator,
    as_values,
    require_finite,
    require_period,
    require_same_index,
    seeded_exponential_average,
)


def _rsi_from_averages(average_gain: FloatArray, average_loss: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = 100.0 - 100.0 / (1.0 + average_gain / average_loss)
    result = np.where(average_loss == 0.0, np.where(average_gain > 0.0, 100.0, 50.0), strength)
    result[np.isnan(average_gain)] = np.nan
    return result


def rsi(close: pd.Series, period: int = 14) -> pd.Series:
    """Return Wilder's RSI (first value at index ``period``)."""
    require_period(period)
    values = as_values(close, "close")
    change = np.full(values.shape[0], np.nan)
    change[1:] = np.diff(values)
    gains = np.where(change > 0.0, change, 0.0)
    losses = np.where(change < 0.0, -change, 0.0)
    average_gain = seeded_exponential_average(gains, period, 1.0 / period, start=1)
    average_loss = seeded_exponential_average(losses, period, 1.0 / period, start=1)
    return pd.Series(
        _rsi_from_averages(average_gain, average_loss), index=close.index, name=f"rsi_{period}"
    )


class RelativeStrengthIndex(StreamingIndicator):
    """Streaming Wilder RSI; O(1) per update."""

    __slots__ = ("_average_gain", "_average_loss", "_previous_close")

    def __init__(self, period: int = 14) -> None:
        super().__init__(require_period(period) + 1)
        self._average_gain = SeededExponentialAverage(period, 1.0 / period)
        self._average_loss = SeededExponentialAverage(period, 1.0 / period)
        self._previous_close: float | None = None

    def update(self, close: float) -> float | None:
        """Add one close and return the RSI (None during warm-up)."""
        price = require_finite(close, "close")
        previous = self._previous_close
        self._previous_close = price
        if previous is None:
            return None
        change = price - previous
        gain = self._average_gain.update(change if change > 0.0 else 0.0)
        loss = self._average_loss.update(-change if change < 0.0 else 0.0)
        if gain is None or loss is None:
            return None
        if loss == 0.0:
            self._value = 100.0 if gain > 0.0 else 50.0
        else:
            self._value = 100.0 - 100.0 / (1.0 + gain / loss)
        return self._value


def _position_in_range(
    close: FloatArray, highest: FloatArray, lowest: FloatArray, flat: float
) -> FloatArray:
    """Return ``(close - lowest) / (highest - lowest)`` scaled to 0..100, ``flat`` on no range."""
    span = highest - lowest
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(span != 0.0, 100.0 * (close - lowest) / span, flat)
    result[np.isnan(span)] = np.nan
    return result


@dataclass(frozen=True, slots=True)
class StochasticValues:
    """One bar of the stochastic oscillator."""

    k: float
    d: float


def stochastic(
    high: pd.Series, low: pd.Series, close: pd.Series, k_period: int = 14, d_period: int = 3
) -> pd.DataFrame:
    """Return the stochastic oscillator columns ``k`` and ``d``."""
    require_period(k_period, "k_period")
    require_period(d_period, "d_period")
    index = require_same_index(high, low, close)
    highs = pd.Series(as_values(high, "high")).rolling(k_period).max().to_numpy(np.float64)
    lows = pd.Series(as_values(low, "low")).rolling(k_period).min().to_numpy(np.float64)
    percent_k = _position_in_range(as_values(close, "close"), highs, lows, 50.0)
    percent_d = pd.Series(percent_k).rolling(d_period).mean().to_numpy(np.float64)
    return pd.DataFrame({"k": percent_k, "d": percent_d}, index=index)


class StochasticOscillator(StreamingIndicator):
    """Streaming stochastic; ``update`` returns %K once %D exists; O(1) amortised."""

    __slots__ = ("_highest", "_lowest", "_signal", "_values")

    def __init__(self, k_period: int = 14, d_period: int = 3) -> None:
        require_period(k_period, "k_period")
        require_period(d_period, "d_period")
        super().__init__(k_period + d_period - 1)
        self._highest = RollingExtremum(k_period, maximum=True)
        self._lowest = RollingExtremum(k_period, maximum=False)
        self._signal = RollingMoments(d_period)
        self._values: StochasticValues | None = None

    @property
    def values(self) -> StochasticValues | None:
        """%K and %D of the latest bar (None during warm-up)."""
        return self._values

    def update(self, high: float, low: float, close: float) -> float | None:
        """Add one bar and return %K (None until %D is warmed up)."""
        self._highest.push(require_finite(high, "high"))
        self._lowest.push(require_finite(low, "low"))
        price = require_finite(close, "close")
        if not self._highest.full:
            return None
        span = self._highest.value - self._lowest.value
        percent_k = 100.0 * (price - self._lowest.value) / span if span != 0.0 else 50.0
        self._signal.push(percent_k)
        if not self._signal.full:
            return None
        self._values = StochasticValues(percent_k, self._signal.mean)
        self._value = percent_k
        return percent_k


def williams_r(high: pd.Series, low: pd.Series, close: pd.Series, period: int = 14) -> pd.Series:
    """Return Williams %R in [-100, 0] (first value at index ``period - 1``)."""
    require_period(period)
    index = require_same_index(high, low, close)
    highs = pd.Series(as_values(high, "high")).rolling(period).max().to_numpy(np.float64)
    lows = pd.Series(as_values(low, "low")).rolling(period).min().to_numpy(np.float64)
    position = _position_in_range(as_values(close, "close"), highs, lows, 50.0)
    return pd.Series(position - 100.0, index=index, name=f"williams_r_{period}")


class WilliamsR(StreamingIndicator):
    """Streaming Williams %R; O(1) amortised per update."""

    __slots__ = ("_highest", "_lowest")

    def __init__(self, period: int = 14) -> None:
        super().__init__(require_period(period))
        self._highest = RollingExtremum(period, maximum=True)
        self._lowest = RollingExtremum(period, maximum=False)

    def update(self, high: float, low: float, close: float) -> float | None:
        """Add one bar and return %R (None during warm-up)."""
        self._highest.push(require_finite(high, "high"))
        self._lowest.push(require_finite(low, "low"))
        price = require_finite(close, "close")
        if not self._highest.full:
            return None
        span = self._highest.value - self._lowest.value
        position = 100.0 * (price - self._lowest.value) / span if span != 0.0 else 50.0
        self._value = position - 100.0
        return self._value


def _cci_from_windows(windows: FloatArray, constant: float) -> FloatArray:
    """CCI of the last element of each row of ``windows`` (rows are typical-price windows)."""
    mean = windows.mean(axis=1)
    deviation = np.abs(windows - mean[:, None]).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(deviation != 0.0, (windows[:, -1] - mean) / (constant * deviation), 0.0)


def cci(
    high: pd.Series,
    low: pd.Series,
    close: pd.Series,
    period: int = 20,
    constant: float = 0.015,
) -> pd.Series:
    """Return the commodity channel index (first value at index ``period - 1``)."""
    require_period(period)
    if constant <= 0.0:
        raise ValueError("constant must be positive")
    index = require_same_index(high, low, close)
    typical = (as_values(high, "high") + as_values(low, "low") + as_values(close, "close")) / 3.0
    result = np.full(typical.shape[0], np.nan)
    if typical.shape[0] >= period:
        result[period - 1 :] = _cci_from_windows(sliding_window_view(typical, period), constant)
    return pd.Series(result, index=index, name=f"cci_{period}")


class CommodityChannelIndex(StreamingIndicator):
    """Streaming CCI; O(period) per update (the mean absolute deviation needs the window)."""

    __slots__ = ("_buffer", "_constant", "_count", "_period")

    def __init__(self, period: int = 20, constant: float = 0.015) -> None:
        super().__init__(require_period(period))
        if constant <= 0.0:
            raise ValueError("constant must be positive")
        self._period = period
        self._constant = constant
        self._buffer = np.zeros(period, dtype=np.float64)
        self._count = 0

    def update(self, high: float, low: float, close: float) -> float | None:
        """Add one bar and return the CCI (None during warm-up)."""
        typical = (
            require_finite(high, "high")
            + require_finite(low, "low")
            + require_finite(close, "close")
        ) / 3.0
        # Shift left so the window stays in time order, matching the batch computation exactly.
        self._buffer[:-1] = self._buffer[1:]
        self._buffer[-1] = typical
        self._count += 1
        if self._count < self._period:
            return None
        self._value = float(_cci_from_windows(self._buffer[None, :], self._constant)[0])
        return self._value
