"""Incremental implementation of the feature set, for live inference: O(1) work per bar.

``IncrementalFeatures.update(bar)`` consumes one closed bar and returns the feature vector in
``definition.names`` order once every feature is warmed up (None before). It holds only the
indicator states and a few previous values, never the history, so the cost of a bar does not
grow with the stream (CCI's mean absolute deviation is O(period), a constant).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from tai_quant import indicators as ti
from tai_quant.features.definition import DEFAULT_FEATURES, OHLCV_COLUMNS, FeatureSetDefinition


@dataclass(frozen=True, slots=True)
class FeatureBar:
    """One closed bar as the incremental features read it (``opened_at`` timezone-aware)."""

    opened_at: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


def feature_bars(frame: pd.DataFrame) -> Iterator[FeatureBar]:
    """Yield the bars of a normalised OHLCV frame (see ``normalise_ohlcv``) in order."""
    index = pd.DatetimeIndex(frame.index)
    columns = [frame[name].to_numpy(dtype=float).tolist() for name in OHLCV_COLUMNS]
    for timestamp, open_, high, low, close, volume in zip(
        index.to_pydatetime(), *columns, strict=True
    ):
        yield FeatureBar(timestamp, open_, high, low, close, volume)


def _ratio_minus_one(numerator: float, denominator: float | None) -> float | None:
    if denominator is None:
        return None
    return numerator / denominator - 1.0 if denominator != 0.0 else math.nan


class _Slope:
    """``value[t] / value[t-1] - 1`` of a stream that may start late (None until two values)."""

    __slots__ = ("_previous",)

    def __init__(self) -> None:
        self._previous: float | None = None

    def relative(self, value: float | None) -> float | None:
        previous = self._previous
        self._previous = value
        if value is None or previous is None:
            return None
        return value / previous - 1.0 if previous != 0.0 else math.nan

    def difference(self, value: float | None) -> float | None:
        previous = self._previous
        self._previous = value
        if value is None or previous is None:
            return None
        return value - previous


class IncrementalFeatures:
    """Streaming twin of :func:`tai_quant.features.batch.compute_features`."""

    def __init__(self, definition: FeatureSetDefinition = DEFAULT_FEATURES) -> None:
        self.definition = definition
        self._log_closes: deque[float] = deque(maxlen=max(definition.return_horizons) + 1)
        self._volatility = [
            ti.RollingVolatility(period) for period in definition.volatility_periods
        ]
        self._rsi = [ti.RelativeStrengthIndex(period) for period in definition.rsi_periods]
        self._macd = ti.MovingAverageConvergenceDivergence(*definition.macd_periods)
        self._macd_slopes = (_Slope(), _Slope(), _Slope())
        self._bollinger = ti.BollingerBands(definition.bollinger_period, definition.bollinger_std)
        self._atr = ti.AverageTrueRange(definition.atr_period)
        self._adx = ti.AverageDirectionalIndex(definition.adx_period)
        self._stochastic = ti.StochasticOscillator(*definition.stochastic_periods)
        self._cci = ti.CommodityChannelIndex(definition.cci_period)
        self._williams = ti.WilliamsR(definition.williams_period)
        self._obv = ti.OnBalanceVolume()
        self._obv_zscore = ti.RollingZScore(definition.obv_zscore_period)
        self._sma_distance = [ti.SimpleMovingAverage(p) for p in definition.sma_distance_periods]
        self._ema_distance = [
            ti.ExponentialMovingAverage(p) for p in definition.ema_distance_periods
        ]
        self._sma_slope = [
            (ti.SimpleMovingAverage(p), _Slope()) for p in definition.sma_slope_periods
        ]
        self._ema_slope = [
            (ti.ExponentialMovingAverage(p), _Slope()) for p in definition.ema_slope_periods
        ]
        self._close_zscore = [ti.RollingZScore(p) for p in definition.close_zscore_periods]
        self._volume_zscore = [ti.RollingZScore(p) for p in definition.volume_zscore_periods]
        self._volume_average = [ti.SimpleMovingAverage(p) for p in definition.volume_ratio_periods]
        self._bars = 0
        self._last_opened_at: datetime | None = None

    @property
    def bars_seen(self) -> int:
        """Return how many bars were consumed."""
        return self._bars

    @property
    def ready(self) -> bool:
        """Whether the last update produced a full feature vector."""
        return self._bars >= self.definition.warmup_period

    @property
    def last_opened_at(self) -> datetime | None:
        """Return the opening time of the last consumed bar."""
        return self._last_opened_at

    def update(self, bar: FeatureBar) -> list[float] | None:
        """Consume one bar; return the features in ``definition.names`` order, or None."""
        if self._last_opened_at is not None and bar.opened_at <= self._last_opened_at:
            raise ValueError(
                f"bars must arrive in time order: {bar.opened_at} after {self._last_opened_at}"
            )
        self._last_opened_at = bar.opened_at
        self._bars += 1
        values = self._compute(bar)
        if any(value is None for value in values):
            return None
        return [float(value) for value in values if value is not None]

    def _compute(self, bar: FeatureBar) -> list[float | None]:  # noqa: PLR0912, PLR0915
        # One flat pass in the definition's order keeps it easy to audit against the batch.
        definition = self.definition
        close, high, low, open_, volume = bar.close, bar.high, bar.low, bar.open, bar.volume
        out: list[float | None] = []

        log_close = math.log(close)
        self._log_closes.append(log_close)
        history = self._log_closes
        for horizon in definition.return_horizons:
            out.append(log_close - history[-horizon - 1] if len(history) > horizon else None)
        out.extend(indicator.update(close) for indicator in self._volatility)
        for rsi in self._rsi:
            value = rsi.update(close)
            out.append(value / 100.0 if value is not None else None)

        self._macd.update(close)
        macd = self._macd.values
        parts = (
            (macd.line / close, macd.signal / close, macd.histogram / close)
            if macd is not None
            else (None, None, None)
        )
        out.extend(parts)
        out.extend(
            slope.difference(part) for slope, part in zip(self._macd_slopes, parts, strict=True)
        )

        self._bollinger.update(close)
        bands = self._bollinger.values
        if bands is None:
            out.extend((None, None))
        else:
            out.append(0.5 if math.isnan(bands.percent_b) else bands.percent_b)
            out.append(bands.width)
        atr = self._atr.update(high, low, close)
        out.append(atr / close if atr is not None else None)

        self._adx.update(high, low, close)
        directional = self._adx.values
        if directional is None:
            out.extend((None, None, None))
        else:
            out.extend(
                (directional.adx / 100.0, directional.plus_di / 100.0, directional.minus_di / 100.0)
            )
        self._stochastic.update(high, low, close)
        oscillator = self._stochastic.values
        if oscillator is None:
            out.extend((None, None))
        else:
            out.extend((oscillator.k / 100.0, oscillator.d / 100.0))
        cci = self._cci.update(high, low, close)
        out.append(cci / 100.0 if cci is not None else None)
        williams = self._williams.update(high, low, close)
        out.append(williams / 100.0 if williams is not None else None)
        out.append(self._obv_zscore.update(self._obv.update(close, volume)))

        out.extend(_ratio_minus_one(close, sma.update(close)) for sma in self._sma_distance)
        out.extend(_ratio_minus_one(close, ema.update(close)) for ema in self._ema_distance)
        for simple, slope in self._sma_slope:
            out.append(slope.relative(simple.update(close)))
        for exponential, slope in self._ema_slope:
            out.append(slope.relative(exponential.update(close)))

        span = high - low
        if span > 0.0:
            out.append((close - open_) / span)
            out.append((high - max(open_, close)) / span)
            out.append((min(open_, close) - low) / span)
        else:
            out.extend((0.0, 0.0, 0.0))
        out.append(span / close)

        out.extend(zscore.update(close) for zscore in self._close_zscore)
        out.extend(zscore.update(volume) for zscore in self._volume_zscore)
        for average in self._volume_average:
            mean = average.update(volume)
            if mean is None:
                out.append(None)
            else:
                out.append(volume / mean if mean > 0.0 else 1.0)

        opened_at = bar.opened_at.astimezone(UTC)
        hour, weekday = float(opened_at.hour), float(opened_at.weekday())
        out.append(math.sin(2.0 * math.pi * hour / 24.0))
        out.append(math.cos(2.0 * math.pi * hour / 24.0))
        out.append(math.sin(2.0 * math.pi * weekday / 7.0))
        out.append(math.cos(2.0 * math.pi * weekday / 7.0))
        return out
