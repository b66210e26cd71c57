"""Trend indicators: SMA, EMA, MACD and ADX (+DI/-DI).

Conventions:

* SMA(n): arithmetic mean of the last n closes; first value at index n-1.
* EMA(n): ``alpha = 2 / (n + 1)``, seeded with the SMA of the first n values (first value at
  index n-1), then ``ema[t] = alpha * x[t] + (1 - alpha) * ema[t-1]``. Libraries that seed with
  the first observation instead (pandas ``ewm(adjust=False)``, ``ta``) converge to the same
  numbers; the seed's influence decays as ``(1 - alpha) ** k``.
* MACD(fast, slow, signal): line = EMA(fast) - EMA(slow), from index slow-1; signal = EMA(signal)
  of the line, seeded with the SMA of its first ``signal`` values (index slow+signal-2);
  histogram = line - signal.
* ADX(n) after Wilder: for every bar after the first, TR, +DM (up move when it beats the down
  move and is positive) and -DM; each is Wilder-smoothed (seeded with the mean of its first n
  values, then ``s[t] = s[t-1] + (x[t] - s[t-1]) / n``), so +DI/-DI = 100 * smoothed DM /
  smoothed TR start at index n (0 when the smoothed TR is 0). DX = 100 * |+DI - -DI| / (+DI +
  -DI) (0 when both are 0); ADX is DX Wilder-smoothed over n, first at index 2n-1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tai_quant.indicators._core import (
    FloatArray,
    RollingMoments,
    SeededExponentialAverage,
    StreamingIndicator,
    as_values,
    require_finite,
    require_period,
    require_same_index,
    seeded_exponential_average,
)


def _ema_alpha(period: int) -> float:
    return 2.0 / (period + 1.0)


def sma(close: pd.Series, period: int) -> pd.Series:
    """Return the simple moving average over ``period`` values (NaN before index period-1)."""
    require_period(period)
    values = as_values(close, "close")
    result = pd.Series(values, index=close.index).rolling(period).mean()
    return result.rename(f"sma_{period}")


def ema(close: pd.Series, period: int) -> pd.Series:
    """Return the SMA-seeded exponential moving average with ``alpha = 2 / (period + 1)``."""
    require_period(period)
    values = as_values(close, "close")
    smoothed = seeded_exponential_average(values, period, _ema_alpha(period))
    return pd.Series(smoothed, index=close.index, name=f"ema_{period}")


class SimpleMovingAverage(StreamingIndicator):
    """Streaming SMA; O(1) per update, drift-free on long streams."""

    __slots__ = ("_moments",)

    def __init__(self, period: int) -> None:
        super().__init__(require_period(period))
        self._moments = RollingMoments(period)

    def update(self, close: float) -> float | None:
        """Add one close and return the SMA (None during warm-up)."""
        self._moments.push(require_finite(close, "close"))
        if self._moments.full:
            self._value = self._moments.mean
        return self._value


class ExponentialMovingAverage(StreamingIndicator):
    """Streaming SMA-seeded EMA with ``alpha = 2 / (period + 1)``; O(1) per update."""

    __slots__ = ("_average",)

    def __init__(self, period: int) -> None:
        super().__init__(require_period(period))
        self._average = SeededExponentialAverage(period, _ema_alpha(period))

    def update(self, close: float) -> float | None:
        """Add one close and return the EMA (None during warm-up)."""
        self._value = self._average.update(require_finite(close, "close"))
        return self._value


@dataclass(frozen=True, slots=True)
class MacdValues:
    """One bar of MACD: line, signal and histogram."""

    line: float
    signal: float
    histogram: float


def _check_macd_periods(fast: int, slow: int, signal: int) -> None:
    require_period(fast, "fast")
    require_period(slow, "slow")
    require_period(signal, "signal")
    if fast >= slow:
        raise ValueError(f"fast ({fast}) must be shorter than slow ({slow})")


def macd(close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9) -> pd.DataFrame:
    """Return MACD columns ``line``, ``signal``, ``histogram`` (SMA-seeded EMAs)."""
    _check_macd_periods(fast, slow, signal)
    values = as_values(close, "close")
    line = seeded_exponential_average(values, fast, _ema_alpha(fast)) - (
        seeded_exponential_average(values, slow, _ema_alpha(slow))
    )
    signal_line = seeded_exponential_average(line, signal, _ema_alpha(signal), start=slow - 1)
    return pd.DataFrame(
        {"line": line, "signal": signal_line, "histogram": line - signal_line},
        index=close.index,
    )


class MovingAverageConvergenceDivergence(StreamingIndicator):
    """Streaming MACD; ``update`` returns the MACD line once the signal line exists."""

    __slots__ = ("_fast", "_signal", "_slow", "_values")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        _check_macd_periods(fast, slow, signal)
        super().__init__(slow + signal - 1)
        self._fast = SeededExponentialAverage(fast, _ema_alpha(fast))
        self._slow = SeededExponentialAverage(slow, _ema_alpha(slow))
        self._signal = SeededExponentialAverage(signal, _ema_alpha(signal))
        self._values: MacdValues | None = None

    @property
    def values(self) -> MacdValues | None:
        """Line, signal and histogram of the latest bar (None during warm-up)."""
        return self._values

    def update(self, close: float) -> float | None:
        """Add one close and return the MACD line (None until the signal is warmed up)."""
        price = require_finite(close, "close")
        fast_value = self._fast.update(price)
        slow_value = self._slow.update(price)
        if fast_value is None or slow_value is None:
            return None
        line = fast_value - slow_value
        signal_value = self._signal.update(line)
        if signal_value is None:
            return None
        self._values = MacdValues(line, signal_value, line - signal_value)
        self._value = line
        return line


@dataclass(frozen=True, slots=True)
class AdxValues:
    """One bar of the directional movement system."""

    adx: float
    plus_di: float
    minus_di: float


def _directional_index(
    plus_dm: FloatArray, minus_dm: FloatArray, true_range: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return (+DI, -DI, DX) from Wilder-smoothed DM and TR (zero-safe)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        plus_di = np.where(true_range != 0.0, 100.0 * plus_dm / true_range, 0.0)
        minus_di = np.where(true_range != 0.0, 100.0 * minus_dm / true_range, 0.0)
        total = plus_di + minus_di
        dx = np.where(total != 0.0, 100.0 * np.abs(plus_di - minus_di) / total, 0.0)
    nan_mask = np.isnan(true_range)
    plus_di[nan_mask] = np.nan
    minus_di[nan_mask] = np.nan
    dx[nan_mask] = np.nan
    return plus_di, minus_di, dx


def adx(high: pd.Series, low: pd.Series, close: pd.Series, period: int = 14) -> pd.DataFrame:
    """Return Wilder's ``adx``, ``plus_di`` and ``minus_di`` columns."""
    require_period(period)
    index = require_same_index(high, low, close)
    highs, lows, closes = as_values(high, "high"), as_values(low, "low"), as_values(close, "close")
    size = closes.shape[0]
    true_range = np.full(size, np.nan)
    plus_dm = np.full(size, np.nan)
    minus_dm = np.full(size, np.nan)
    if size > 1:
        previous_close = closes[:-1]
        true_range[1:] = np.maximum.reduce(
            [
                highs[1:] - lows[1:],
                np.abs(highs[1:] - previous_close),
                np.abs(lows[1:] - previous_close),
            ]
        )
        up_move = highs[1:] - highs[:-1]
        down_move = lows[:-1] - lows[1:]
        plus_dm[1:] = np.where((up_move > down_move) & (up_move > 0.0), up_move, 0.0)
        minus_dm[1:] = np.where((down_move > up_move) & (down_move > 0.0), down_move, 0.0)
    alpha = 1.0 / period
    smoothed_tr = seeded_exponential_average(true_range, period, alpha, start=1)
    smoothed_plus = seeded_exponential_average(plus_dm, period, alpha, start=1)
    smoothed_minus = seeded_exponential_average(minus_dm, period, alpha, start=1)
    plus_di, minus_di, dx = _directional_index(smoothed_plus, smoothed_minus, smoothed_tr)
    average = seeded_exponential_average(dx, period, alpha, start=period)
    return pd.DataFrame({"adx": average, "plus_di": plus_di, "minus_di": minus_di}, index=index)


class AverageDirectionalIndex(StreamingIndicator):
    """Streaming Wilder ADX; ``update`` returns the ADX, ``values`` adds +DI/-DI."""

    __slots__ = (
        "_adx",
        "_minus_dm",
        "_plus_dm",
        "_previous",
        "_true_range",
        "_values",
    )

    def __init__(self, period: int = 14) -> None:
        super().__init__(2 * require_period(period))
        alpha = 1.0 / period
        self._true_range = SeededExponentialAverage(period, alpha)
        self._plus_dm = SeededExponentialAverage(period, alpha)
        self._minus_dm = SeededExponentialAverage(period, alpha)
        self._adx = SeededExponentialAverage(period, alpha)
        self._previous: tuple[float, float, float] | None = None
        self._values: AdxValues | None = None

    @property
    def values(self) -> AdxValues | None:
        """ADX, +DI and -DI of the latest bar (None during warm-up)."""
        return self._values

    def update(self, high: float, low: float, close: float) -> float | None:
        """Add one bar and return the ADX (None during warm-up)."""
        bar_high = require_finite(high, "high")
        bar_low = require_finite(low, "low")
        bar_close = require_finite(close, "close")
        previous = self._previous
        self._previous = (bar_high, bar_low, bar_close)
        if previous is None:
            return None
        previous_high, previous_low, previous_close = previous
        true_range = max(
            bar_high - bar_low, abs(bar_high - previous_close), abs(bar_low - previous_close)
        )
        up_move = bar_high - previous_high
        down_move = previous_low - bar_low
        plus_dm = up_move if up_move > down_move and up_move > 0.0 else 0.0
        minus_dm = down_move if down_move > up_move and down_move > 0.0 else 0.0
        smoothed_tr = self._true_range.update(true_range)
        smoothed_plus = self._plus_dm.update(plus_dm)
        smoothed_minus = self._minus_dm.update(minus_dm)
        if smoothed_tr is None or smoothed_plus is None or smoothed_minus is None:
            return None
        plus_di = 100.0 * smoothed_plus / smoothed_tr if smoothed_tr != 0.0 else 0.0
        minus_di = 100.0 * smoothed_minus / smoothed_tr if smoothed_tr != 0.0 else 0.0
        total = plus_di + minus_di
        dx = 100.0 * abs(plus_di - minus_di) / total if total != 0.0 else 0.0
        average = self._adx.update(dx)
        if average is None:
            return None
        self._values = AdxValues(average, plus_di, minus_di)
        self._value = average
        return average
