"""Rolling statistics: z-score of a value against its own recent window.

Convention: ``z[t] = (x[t] - mean) / std`` where mean and std (population, ddof=0, by default)
are taken over the last n values *including* x[t]; first value at index n-1. A window with no
spread (a constant series, up to rounding) has z = 0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tai_quant.indicators._core import (
    RollingMoments,
    StreamingIndicator,
    as_values,
    is_zero_spread,
    require_finite,
    require_period,
    rolling_mean_std,
    zero_spread_mask,
)


def _check_zscore_arguments(period: int, ddof: int) -> None:
    require_period(period)
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
    if period <= ddof:
        raise ValueError("period must exceed ddof")


def rolling_zscore(series: pd.Series, period: int = 20, *, ddof: int = 0) -> pd.Series:
    """Return the z-score of each value against the last ``period`` values."""
    _check_zscore_arguments(period, ddof)
    values = as_values(series, "series")
    mean, deviation = rolling_mean_std(values, period, ddof=ddof)
    flat = zero_spread_mask(deviation, mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(flat, 0.0, (values - mean) / deviation)
    score[np.isnan(mean)] = np.nan
    return pd.Series(score, index=series.index, name=f"zscore_{period}")


class RollingZScore(StreamingIndicator):
    """Streaming rolling z-score; O(1) per update."""

    __slots__ = ("_ddof", "_moments")

    def __init__(self, period: int = 20, *, ddof: int = 0) -> None:
        _check_zscore_arguments(period, ddof)
        super().__init__(period)
        self._ddof = ddof
        self._moments = RollingMoments(period)

    def update(self, value: float) -> float | None:
        """Add one value and return its z-score (None during warm-up)."""
        number = require_finite(value, "value")
        self._moments.push(number)
        if not self._moments.full:
            return None
        mean = self._moments.mean
        deviation = math.sqrt(self._moments.variance(self._ddof))
        self._value = 0.0 if is_zero_spread(deviation, mean) else (number - mean) / deviation
        return self._value
