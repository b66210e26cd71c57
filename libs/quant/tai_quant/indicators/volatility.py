"""Volatility indicators: True Range, Wilder ATR, Bollinger Bands and realised volatility.

Conventions:

* True Range: ``max(high - low, |high - previous close|, |low - previous close|)``; the first
  bar has no previous close, so its TR is ``high - low`` (as in ``ta``).
* ATR(n) after Wilder: the first ATR, at index n-1, is the mean of the first n TRs; then
  ``atr[t] = atr[t-1] + (tr[t] - atr[t-1]) / n``.
* Bollinger(n, k): middle = SMA(n), upper/lower = middle +/- k * population std (ddof=0) of the
  same n closes; ``percent_b = (close - lower) / (upper - lower)`` (NaN when the band has no
  width); ``width = (upper - lower) / middle`` (a fraction; ``ta`` reports it in percent).
* Rolling volatility(n): sample std (ddof=1 by default) of the last n log returns
  ``ln(close[t] / close[t-1])``, first at index n; multiplied by ``sqrt(periods_per_year)``
  when that is given (annualised).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tai_quant.indicators._core import (
    RollingMoments,
    SeededExponentialAverage,
    StreamingIndicator,
    as_values,
    is_zero_spread,
    require_finite,
    require_period,
    require_same_index,
    rolling_mean_std,
    seeded_exponential_average,
    zero_spread_mask,
)


def true_range(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    """Return the true range of every bar (the first bar's is ``high - low``)."""
    index = require_same_index(high, low, close)
    highs, lows, closes = as_values(high, "high"), as_values(low, "low"), as_values(close, "close")
    result = highs - lows
    if closes.shape[0] > 1:
        previous_close = closes[:-1]
        result[1:] = np.maximum.reduce(
            [result[1:], np.abs(highs[1:] - previous_close), np.abs(lows[1:] - previous_close)]
        )
    return pd.Series(result, index=index, name="true_range")


class TrueRange(StreamingIndicator):
    """Streaming true range; ready from the first bar."""

    __slots__ = ("_previous_close",)

    def __init__(self) -> None:
        super().__init__(1)
        self._previous_close: float | None = None

    def update(self, high: float, low: float, close: float) -> float:
        """Add one bar and return its true range."""
        bar_high = require_finite(high, "high")
        bar_low = require_finite(low, "low")
        value = bar_high - bar_low
        if self._previous_close is not None:
            value = max(
                value, abs(bar_high - self._previous_close), abs(bar_low - self._previous_close)
            )
        self._previous_close = require_finite(close, "close")
        self._value = value
        return value


def atr(high: pd.Series, low: pd.Series, close: pd.Series, period: int = 14) -> pd.Series:
    """Return Wilder's average true range (first value at index ``period - 1``)."""
    require_period(period)
    ranges = true_range(high, low, close).to_numpy(dtype=np.float64)
    smoothed = seeded_exponential_average(ranges, period, 1.0 / period)
    return pd.Series(smoothed, index=high.index, name=f"atr_{period}")


class AverageTrueRange(StreamingIndicator):
    """Streaming Wilder ATR; O(1) per update."""

    __slots__ = ("_average", "_true_range")

    def __init__(self, period: int = 14) -> None:
        super().__init__(require_period(period))
        self._true_range = TrueRange()
        self._average = SeededExponentialAverage(period, 1.0 / period)

    def update(self, high: float, low: float, close: float) -> float | None:
        """Add one bar and return the ATR (None during warm-up)."""
        self._value = self._average.update(self._true_range.update(high, low, close))
        return self._value


@dataclass(frozen=True, slots=True)
class BollingerValues:
    """One bar of Bollinger Bands."""

    middle: float
    upper: float
    lower: float
    percent_b: float
    width: float


def _check_band_arguments(period: int, num_std: float) -> None:
    require_period(period)
    if not math.isfinite(num_std) or num_std <= 0.0:
        raise ValueError(f"num_std must be positive, got {num_std!r}")


def bollinger_bands(close: pd.Series, period: int = 20, num_std: float = 2.0) -> pd.DataFrame:
    """Return ``middle``, ``upper``, ``lower``, ``percent_b`` and ``width`` columns."""
    _check_band_arguments(period, num_std)
    values = as_values(close, "close")
    middle, deviation = rolling_mean_std(values, period, ddof=0)
    deviation[zero_spread_mask(deviation, middle)] = 0.0
    upper = middle + num_std * deviation
    lower = middle - num_std * deviation
    band = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        percent_b = np.where(band != 0.0, (values - lower) / band, np.nan)
        width = band / middle
    return pd.DataFrame(
        {"middle": middle, "upper": upper, "lower": lower, "percent_b": percent_b, "width": width},
        index=close.index,
    )


class BollingerBands(StreamingIndicator):
    """Streaming Bollinger Bands; ``update`` returns the middle band; O(1) per update."""

    __slots__ = ("_moments", "_num_std", "_values")

    def __init__(self, period: int = 20, num_std: float = 2.0) -> None:
        _check_band_arguments(period, num_std)
        super().__init__(period)
        self._num_std = num_std
        self._moments = RollingMoments(period)
        self._values: BollingerValues | None = None

    @property
    def values(self) -> BollingerValues | None:
        """All band values of the latest bar (None during warm-up)."""
        return self._values

    def update(self, close: float) -> float | None:
        """Add one close and return the middle band (None during warm-up)."""
        price = require_finite(close, "close")
        self._moments.push(price)
        if not self._moments.full:
            return None
        middle = self._moments.mean
        deviation = math.sqrt(self._moments.variance(ddof=0))
        if is_zero_spread(deviation, middle):
            deviation = 0.0
        upper = middle + self._num_std * deviation
        lower = middle - self._num_std * deviation
        band = upper - lower
        percent_b = (price - lower) / band if band != 0.0 else math.nan
        width = band / middle if middle != 0.0 else math.nan
        self._values = BollingerValues(middle, upper, lower, percent_b, width)
        self._value = middle
        return middle


def _check_volatility_arguments(period: int, ddof: int, periods_per_year: float | None) -> None:
    require_period(period)
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
    if period <= ddof:
        raise ValueError("period must exceed ddof")
    if periods_per_year is not None and not periods_per_year > 0.0:
        raise ValueError("periods_per_year must be positive")


def rolling_volatility(
    close: pd.Series,
    period: int = 20,
    *,
    ddof: int = 1,
    periods_per_year: float | None = None,
) -> pd.Series:
    """Return the rolling std of log returns, annualised when ``periods_per_year`` is given."""
    _check_volatility_arguments(period, ddof, periods_per_year)
    values = as_values(close, "close")
    if np.any(values <= 0.0):
        raise ValueError("close must be positive for log returns")
    log_returns = np.full(values.shape[0], np.nan)
    log_returns[1:] = np.diff(np.log(values))
    deviation = rolling_mean_std(log_returns, period, ddof=ddof)[1]
    if periods_per_year is not None:
        deviation = deviation * math.sqrt(periods_per_year)
    return pd.Series(deviation, index=close.index, name=f"volatility_{period}")


class RollingVolatility(StreamingIndicator):
    """Streaming std of log returns (optionally annualised); O(1) per update."""

    __slots__ = ("_ddof", "_moments", "_previous_close", "_scale")

    def __init__(
        self, period: int = 20, *, ddof: int = 1, periods_per_year: float | None = None
    ) -> None:
        _check_volatility_arguments(period, ddof, periods_per_year)
        super().__init__(period + 1)
        self._ddof = ddof
        self._scale = math.sqrt(periods_per_year) if periods_per_year is not None else 1.0
        self._moments = RollingMoments(period)
        self._previous_close: float | None = None

    def update(self, close: float) -> float | None:
        """Add one close and return the volatility (None during warm-up)."""
        price = require_finite(close, "close")
        if price <= 0.0:
            raise ValueError("close must be positive for log returns")
        previous = self._previous_close
        self._previous_close = price
        if previous is None:
            return None
        self._moments.push(math.log(price) - math.log(previous))
        if not self._moments.full:
            return None
        self._value = math.sqrt(self._moments.variance(self._ddof)) * self._scale
        return self._value
