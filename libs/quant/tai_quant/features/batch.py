"""Batch (vectorised) implementation of the feature set, for training.

Every value at row t depends only on rows 0..t (a test shuffles the future and checks it).
Rows before the definition's warm-up hold NaN in at least one column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tai_quant import indicators as ti
from tai_quant.features.definition import DEFAULT_FEATURES, OHLCV_COLUMNS, FeatureSetDefinition
from tai_quant.indicators._core import FloatArray


def normalise_ohlcv(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with lower-case OHLCV columns and a UTC DatetimeIndex."""
    renamed = frame.rename(columns={column: str(column).lower() for column in frame.columns})
    missing = [column for column in OHLCV_COLUMNS if column not in renamed.columns]
    if missing:
        raise ValueError(f"missing OHLCV columns: {missing}")
    index = pd.DatetimeIndex(renamed.index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    result = renamed.loc[:, list(OHLCV_COLUMNS)].astype(np.float64)
    result.index = index
    return result


def _shift(values: FloatArray, periods: int) -> FloatArray:
    shifted = np.full(values.shape[0], np.nan)
    if periods < values.shape[0]:
        shifted[periods:] = values[: values.shape[0] - periods]
    return shifted


def _ratio_minus_one(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return numerator / denominator - 1.0


def compute_features(  # noqa: PLR0912, PLR0915
    frame: pd.DataFrame, definition: FeatureSetDefinition = DEFAULT_FEATURES
) -> pd.DataFrame:
    """Return one row of features per bar of ``frame`` (columns in ``definition.names``)."""
    # One flat pass in the definition's order keeps it easy to audit against the incremental.
    bars = normalise_ohlcv(frame)
    open_, high, low = bars["open"], bars["high"], bars["low"]
    close, volume = bars["close"], bars["volume"]
    closes = close.to_numpy(np.float64)
    columns: dict[str, FloatArray] = {}

    log_close = np.log(closes)
    for horizon in definition.return_horizons:
        columns[f"log_return_{horizon}"] = log_close - _shift(log_close, horizon)
    for period in definition.volatility_periods:
        columns[f"volatility_{period}"] = ti.rolling_volatility(close, period).to_numpy()
    for period in definition.rsi_periods:
        columns[f"rsi_{period}"] = ti.rsi(close, period).to_numpy() / 100.0

    fast, slow, signal = definition.macd_periods
    macd = ti.macd(close, fast, slow, signal)
    for part in ("line", "signal", "histogram"):
        scaled = macd[part].to_numpy() / closes
        columns[f"macd_{part}"] = scaled
    for part in ("line", "signal", "histogram"):
        scaled = columns[f"macd_{part}"]
        columns[f"macd_{part}_slope"] = scaled - _shift(scaled, 1)

    bands = ti.bollinger_bands(close, definition.bollinger_period, definition.bollinger_std)
    percent_b = bands["percent_b"].to_numpy()
    columns["bollinger_percent_b"] = np.where(
        np.isnan(percent_b) & ~np.isnan(bands["middle"].to_numpy()), 0.5, percent_b
    )
    columns["bollinger_width"] = bands["width"].to_numpy()
    columns["atr_ratio"] = ti.atr(high, low, close, definition.atr_period).to_numpy() / closes

    directional = ti.adx(high, low, close, definition.adx_period)
    adx_ready = ~np.isnan(directional["adx"].to_numpy())
    for part in ("adx", "plus_di", "minus_di"):
        columns[part] = np.where(adx_ready, directional[part].to_numpy() / 100.0, np.nan)
    k_period, d_period = definition.stochastic_periods
    oscillator = ti.stochastic(high, low, close, k_period, d_period)
    stochastic_ready = ~np.isnan(oscillator["d"].to_numpy())
    columns["stochastic_k"] = np.where(stochastic_ready, oscillator["k"].to_numpy() / 100.0, np.nan)
    columns["stochastic_d"] = oscillator["d"].to_numpy() / 100.0
    columns["cci"] = ti.cci(high, low, close, definition.cci_period).to_numpy() / 100.0
    columns["williams_r"] = (
        ti.williams_r(high, low, close, definition.williams_period).to_numpy() / 100.0
    )
    columns["obv_zscore"] = ti.rolling_zscore(
        ti.obv(close, volume), definition.obv_zscore_period
    ).to_numpy()

    for period in definition.sma_distance_periods:
        columns[f"sma_distance_{period}"] = _ratio_minus_one(
            closes, ti.sma(close, period).to_numpy()
        )
    for period in definition.ema_distance_periods:
        columns[f"ema_distance_{period}"] = _ratio_minus_one(
            closes, ti.ema(close, period).to_numpy()
        )
    for period in definition.sma_slope_periods:
        average = ti.sma(close, period).to_numpy()
        columns[f"sma_slope_{period}"] = _ratio_minus_one(average, _shift(average, 1))
    for period in definition.ema_slope_periods:
        average = ti.ema(close, period).to_numpy()
        columns[f"ema_slope_{period}"] = _ratio_minus_one(average, _shift(average, 1))

    opens, highs, lows = open_.to_numpy(), high.to_numpy(), low.to_numpy()
    span = highs - lows
    has_range = span > 0.0
    safe_span = np.where(has_range, span, 1.0)
    columns["candle_body"] = np.where(has_range, (closes - opens) / safe_span, 0.0)
    columns["candle_upper_shadow"] = np.where(
        has_range, (highs - np.maximum(opens, closes)) / safe_span, 0.0
    )
    columns["candle_lower_shadow"] = np.where(
        has_range, (np.minimum(opens, closes) - lows) / safe_span, 0.0
    )
    columns["candle_range"] = span / closes

    for period in definition.close_zscore_periods:
        columns[f"close_zscore_{period}"] = ti.rolling_zscore(close, period).to_numpy()
    for period in definition.volume_zscore_periods:
        columns[f"volume_zscore_{period}"] = ti.rolling_zscore(volume, period).to_numpy()
    volumes = volume.to_numpy(np.float64)
    for period in definition.volume_ratio_periods:
        average = ti.sma(volume, period).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(average > 0.0, volumes / average, 1.0)
        columns[f"volume_ratio_{period}"] = np.where(np.isnan(average), np.nan, ratio)

    index = pd.DatetimeIndex(bars.index)
    hours = index.hour.to_numpy(np.float64)
    weekdays = index.day_of_week.to_numpy(np.float64)
    columns["hour_sin"] = np.sin(2.0 * np.pi * hours / 24.0)
    columns["hour_cos"] = np.cos(2.0 * np.pi * hours / 24.0)
    columns["weekday_sin"] = np.sin(2.0 * np.pi * weekdays / 7.0)
    columns["weekday_cos"] = np.cos(2.0 * np.pi * weekdays / 7.0)

    features = pd.DataFrame(columns, index=bars.index)
    return features.loc[:, list(definition.names)]
