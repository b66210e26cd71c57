"""Shared building blocks for the batch and streaming indicators.

The streaming helpers do O(1) work per update (amortised where noted) and keep their floating
point error bounded on endless streams: running moments are re-derived exactly from the window
every ``period`` updates, so rounding error cannot accumulate beyond one window's worth.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

FloatArray = npt.NDArray[np.float64]

# A standard deviation this small relative to the mean is a constant window seen through
# rounding noise; treating it as exactly zero keeps batch and streaming results identical.
ZERO_SPREAD_RELATIVE_TOLERANCE = 1e-12


def require_period(period: int, name: str = "period", minimum: int = 1) -> int:
    """Return ``period`` after checking it is an int of at least ``minimum``."""
    if isinstance(period, bool) or not isinstance(period, int) or period < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {period!r}")
    return period


def require_finite(value: float, name: str) -> float:
    """Return ``value`` as a float after checking it is finite (streams never carry NaN)."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def as_values(series: pd.Series, name: str) -> FloatArray:
    """Return the series as a float64 array, refusing NaN and infinities."""
    if not isinstance(series, pd.Series):
        raise TypeError(f"{name} must be a pandas Series, got {type(series).__name__}")
    values = series.to_numpy(dtype=np.float64, copy=True)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must contain only finite values")
    return values


def require_same_index(*series: pd.Series) -> pd.Index:
    """Return the common index of ``series``, refusing misaligned inputs."""
    first = series[0].index
    for other in series[1:]:
        if not other.index.equals(first):
            raise ValueError("input series must share the same index")
    return first


def is_zero_spread(spread: float, level: float) -> bool:
    """Tell whether a spread (std, band width) is a constant window's rounding noise."""
    return spread <= ZERO_SPREAD_RELATIVE_TOLERANCE * abs(level)


def zero_spread_mask(spread: FloatArray, level: FloatArray) -> npt.NDArray[np.bool_]:
    """Vectorised :func:`is_zero_spread` (NaN spreads are not zero)."""
    with np.errstate(invalid="ignore"):
        return spread <= ZERO_SPREAD_RELATIVE_TOLERANCE * np.abs(level)


# Rows of windows processed at once by rolling_mean_std: bounds the temporary memory.
_WINDOW_CHUNK_ROWS = 65_536


def rolling_mean_std(
    values: FloatArray, period: int, ddof: int = 0
) -> tuple[FloatArray, FloatArray]:
    """Return the rolling mean and std over ``period`` values, NaN before index period-1.

    Each window is computed exactly (two-pass), unlike pandas' running-sum ``rolling().std()``
    whose rounding error grows along the series (about 1e-9 relative after a few thousand bars).
    NaN inputs give NaN windows.
    """
    size = values.shape[0]
    mean = np.full(size, np.nan)
    deviation = np.full(size, np.nan)
    if size < period or period <= ddof:
        return mean, deviation
    windows = sliding_window_view(values, period)
    for start in range(0, windows.shape[0], _WINDOW_CHUNK_ROWS):
        chunk = windows[start : start + _WINDOW_CHUNK_ROWS]
        stop = start + period - 1 + chunk.shape[0]
        mean[start + period - 1 : stop] = chunk.mean(axis=1)
        deviation[start + period - 1 : stop] = chunk.std(axis=1, ddof=ddof)
    return mean, deviation


def seeded_exponential_average(
    values: FloatArray, period: int, alpha: float, start: int = 0
) -> FloatArray:
    """Exponential average seeded with the simple mean of its first ``period`` inputs.

    ``values[start:]`` are the inputs. The first output, at ``start + period - 1``, is the mean
    of ``values[start:start + period]``; then ``out[t] = alpha * values[t] + (1 - alpha) *
    out[t - 1]``. Earlier outputs are NaN. With ``alpha = 2 / (period + 1)`` this is the EMA,
    with ``alpha = 1 / period`` Wilder's smoothing.
    """
    result = np.full(values.shape[0], np.nan, dtype=np.float64)
    seed_index = start + period - 1
    if seed_index >= values.shape[0]:
        return result
    tail = values[seed_index:].copy()
    tail[0] = float(np.mean(values[start : seed_index + 1]))
    smoothed = pd.Series(tail).ewm(alpha=alpha, adjust=False).mean().to_numpy(dtype=np.float64)
    result[seed_index:] = smoothed
    return result


class SeededExponentialAverage:
    """Streaming twin of :func:`seeded_exponential_average`; O(1) per update."""

    __slots__ = ("_alpha", "_count", "_period", "_seed_values", "_value")

    def __init__(self, period: int, alpha: float) -> None:
        self._period = require_period(period)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self._alpha = alpha
        self._count = 0
        self._seed_values: list[float] = []
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        """The current average, None until ``period`` inputs were seen."""
        return self._value

    def update(self, value: float) -> float | None:
        """Add one input and return the average (None while seeding)."""
        self._count += 1
        if self._value is None:
            self._seed_values.append(value)
            if self._count == self._period:
                self._value = float(np.mean(np.asarray(self._seed_values, dtype=np.float64)))
                self._seed_values = []
            return self._value
        self._value = self._alpha * value + (1.0 - self._alpha) * self._value
        return self._value


class RollingMoments:
    """Mean and variance of the last ``period`` values; O(1) amortised per update.

    Updates use the sliding-window Welford recurrence; every ``period`` updates the mean and
    the sum of squared deviations are recomputed exactly from the window (``math.fsum``), which
    bounds the drift on long streams to one window's rounding error.
    """

    __slots__ = ("_buffer", "_count", "_head", "_mean", "_period", "_since_exact", "_squares")

    def __init__(self, period: int) -> None:
        self._period = require_period(period)
        self._buffer = [0.0] * period
        self._head = 0
        self._count = 0
        self._mean = 0.0
        self._squares = 0.0
        self._since_exact = 0

    @property
    def full(self) -> bool:
        """Whether ``period`` values have been seen."""
        return self._count >= self._period

    @property
    def mean(self) -> float:
        """Mean of the values in the window."""
        return self._mean

    def variance(self, ddof: int = 0) -> float:
        """Variance of the window with ``ddof`` delta degrees of freedom (never negative)."""
        observations = min(self._count, self._period)
        if observations - ddof <= 0:
            return math.nan
        return max(self._squares, 0.0) / (observations - ddof)

    def window(self) -> list[float]:
        """The values in the window, oldest first."""
        if self._count < self._period:
            return self._buffer[: self._count]
        return self._buffer[self._head :] + self._buffer[: self._head]

    def push(self, value: float) -> None:
        """Add ``value``, dropping the oldest one once the window is full."""
        if self._count < self._period:
            self._count += 1
            delta = value - self._mean
            self._mean += delta / self._count
            self._squares += delta * (value - self._mean)
        else:
            self._count += 1
            oldest = self._buffer[self._head]
            previous_mean = self._mean
            self._mean += (value - oldest) / self._period
            self._squares += (value - oldest) * (value - self._mean + oldest - previous_mean)
        self._buffer[self._head] = value
        self._head = (self._head + 1) % self._period
        self._since_exact += 1
        if self._count >= self._period and self._since_exact >= self._period:
            self._recompute_exactly()

    def _recompute_exactly(self) -> None:
        self._mean = math.fsum(self._buffer) / self._period
        self._squares = math.fsum((item - self._mean) ** 2 for item in self._buffer)
        self._since_exact = 0


class RollingExtremum:
    """Maximum (or minimum) of the last ``period`` values; O(1) amortised (monotonic deque)."""

    __slots__ = ("_candidates", "_count", "_is_maximum", "_period")

    def __init__(self, period: int, *, maximum: bool) -> None:
        self._period = require_period(period)
        self._is_maximum = maximum
        self._count = 0
        # (position, value) pairs whose values are strictly monotonic from front to back.
        self._candidates: deque[tuple[int, float]] = deque()

    @property
    def full(self) -> bool:
        """Whether ``period`` values have been seen."""
        return self._count >= self._period

    @property
    def value(self) -> float:
        """The extremum of the window (NaN before the first value)."""
        return self._candidates[0][1] if self._candidates else math.nan

    def push(self, value: float) -> None:
        """Add ``value`` and expire the one that left the window."""
        position = self._count
        self._count += 1
        candidates = self._candidates
        if self._is_maximum:
            while candidates and candidates[-1][1] <= value:
                candidates.pop()
        else:
            while candidates and candidates[-1][1] >= value:
                candidates.pop()
        candidates.append((position, value))
        if candidates[0][0] <= position - self._period:
            candidates.popleft()


class StreamingIndicator:
    """Base of the streaming indicators: ``value``, ``ready`` and ``warmup_period``.

    ``warmup_period`` is the number of updates after which the indicator first returns a value
    (so the batch twin's first non-NaN output sits at index ``warmup_period - 1``).
    """

    __slots__ = ("_value", "warmup_period")

    def __init__(self, warmup_period: int) -> None:
        self.warmup_period = warmup_period
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        """The latest output, None until warmed up."""
        return self._value

    @property
    def ready(self) -> bool:
        """Whether the indicator has produced a value."""
        return self._value is not None
