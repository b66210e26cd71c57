"""The feature set: batch == incremental to 1e-9, no look-ahead, cross-checked against ``ta``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ta  # type: ignore[import-untyped]

from tai_quant.features import (
    DEFAULT_FEATURES,
    FeatureBar,
    FeatureSetDefinition,
    IncrementalFeatures,
    compute_features,
    feature_bars,
    normalise_ohlcv,
)

BUNDLED_EURUSD = (
    Path(__file__).resolve().parents[3]
    / "services"
    / "ingestion"
    / "tai_ingestion"
    / "data"
    / "EURUSD.csv"
)
AGREEMENT_TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def bundled_bars() -> pd.DataFrame:
    """The bundled hourly EURUSD bars, normalised (lower-case columns, UTC index)."""
    return normalise_ohlcv(pd.read_csv(BUNDLED_EURUSD, index_col=0, parse_dates=True))


@pytest.fixture(scope="module")
def batch_features(bundled_bars: pd.DataFrame) -> pd.DataFrame:
    return compute_features(bundled_bars)


def _stream(bars: pd.DataFrame, definition: FeatureSetDefinition) -> list[list[float] | None]:
    engine = IncrementalFeatures(definition)
    return [engine.update(bar) for bar in feature_bars(bars)]


def test_feature_set_has_about_fifty_uniquely_named_features() -> None:
    names = DEFAULT_FEATURES.names
    assert len(names) >= 45
    assert len(set(names)) == len(names)


def test_feature_set_version_is_stable_and_changes_with_any_parameter() -> None:
    assert FeatureSetDefinition().version == DEFAULT_FEATURES.version
    assert replace(DEFAULT_FEATURES, rsi_periods=(7, 14)).version != DEFAULT_FEATURES.version


def test_incremental_features_equal_batch_features_on_every_feature_and_bar_after_warm_up(
    bundled_bars: pd.DataFrame, batch_features: pd.DataFrame
) -> None:
    # Arrange
    warm = DEFAULT_FEATURES.warmup_period - 1

    # Act
    streamed = _stream(bundled_bars, DEFAULT_FEATURES)

    # Assert: both start at the same bar, and agree on every later bar and feature
    assert all(row is None for row in streamed[:warm])
    assert all(row is not None for row in streamed[warm:])
    expected = batch_features.to_numpy()
    assert np.isnan(expected[:warm]).any(axis=1).all()
    assert not np.isnan(expected[warm:]).any()
    actual = np.array([row for row in streamed[warm:] if row is not None])
    assert actual.shape == expected[warm:].shape
    for column, name in enumerate(DEFAULT_FEATURES.names):
        np.testing.assert_allclose(
            actual[:, column],
            expected[warm:, column],
            rtol=0,
            atol=AGREEMENT_TOLERANCE,
            err_msg=name,
        )


def test_a_smaller_definition_also_agrees_between_batch_and_incremental(
    bundled_bars: pd.DataFrame,
) -> None:
    definition = FeatureSetDefinition(
        return_horizons=(1, 3),
        volatility_periods=(5,),
        rsi_periods=(5,),
        macd_periods=(3, 7, 4),
        sma_distance_periods=(5,),
        ema_distance_periods=(5,),
        sma_slope_periods=(5,),
        ema_slope_periods=(5,),
        close_zscore_periods=(5,),
        volume_zscore_periods=(5,),
        volume_ratio_periods=(5,),
        obv_zscore_period=10,
    )
    bars = bundled_bars.iloc[:600]
    expected = compute_features(bars, definition).to_numpy()
    streamed = _stream(bars, definition)
    warm = definition.warmup_period - 1
    actual = np.array([row for row in streamed[warm:] if row is not None])
    np.testing.assert_allclose(actual, expected[warm:], rtol=0, atol=AGREEMENT_TOLERANCE)


@pytest.mark.parametrize("cut", [150, 1234, 4000])
def test_shuffling_the_future_does_not_change_any_feature_up_to_the_cut(
    bundled_bars: pd.DataFrame, batch_features: pd.DataFrame, cut: int
) -> None:
    # Arrange: keep bars 0..cut, permute the OHLCV rows after it (timestamps stay in order)
    generator = np.random.default_rng(cut)
    future = bundled_bars.iloc[cut + 1 :].to_numpy()
    shuffled_values = np.vstack(
        [bundled_bars.iloc[: cut + 1].to_numpy(), future[generator.permutation(len(future))]]
    )
    shuffled = pd.DataFrame(shuffled_values, index=bundled_bars.index, columns=bundled_bars.columns)

    # Act
    recomputed = compute_features(shuffled)

    # Assert
    pd.testing.assert_frame_equal(recomputed.iloc[: cut + 1], batch_features.iloc[: cut + 1])
    assert not recomputed.iloc[cut + 1 :].equals(batch_features.iloc[cut + 1 :])


def test_incremental_features_refuse_a_bar_that_is_not_newer() -> None:
    engine = IncrementalFeatures()
    opened_at = datetime(2024, 1, 1, tzinfo=UTC)
    engine.update(FeatureBar(opened_at, 1.1, 1.2, 1.0, 1.1, 10.0))
    with pytest.raises(ValueError, match="time order"):
        engine.update(FeatureBar(opened_at, 1.1, 1.2, 1.0, 1.1, 10.0))
    engine.update(FeatureBar(opened_at + timedelta(hours=1), 1.1, 1.2, 1.0, 1.1, 10.0))
    assert engine.bars_seen == 2


def _log_return_volatility(data: pd.DataFrame) -> pd.Series:
    log_close: pd.Series = np.log(data.Close)
    return log_close.diff().rolling(24).std()


# ta seeds its Wilder/EMA averages with the first value, we with an SMA; compare once the seed
# has decayed. Features are scaled (0..1, or divided by the close): undo the scale first.
TA_CROSS_CHECKS: list[
    tuple[str, Callable[[pd.DataFrame], pd.Series], Callable[[pd.Series], pd.Series], int]
] = [
    ("rsi_14", lambda d: ta.momentum.rsi(d.Close, 14), lambda f: f * 100.0, 1000),
    ("macd_line", lambda d: ta.trend.macd(d.Close), lambda f: f, 1000),
    ("macd_signal", lambda d: ta.trend.macd_signal(d.Close), lambda f: f, 1000),
    ("macd_histogram", lambda d: ta.trend.macd_diff(d.Close), lambda f: f, 1000),
    ("bollinger_percent_b", lambda d: ta.volatility.bollinger_pband(d.Close), lambda f: f, 19),
    ("bollinger_width", lambda d: ta.volatility.bollinger_wband(d.Close), lambda f: f * 100.0, 19),
    ("stochastic_k", lambda d: ta.momentum.stoch(d.High, d.Low, d.Close), lambda f: f * 100, 99),
    (
        "stochastic_d",
        lambda d: ta.momentum.stoch_signal(d.High, d.Low, d.Close),
        lambda f: f * 100.0,
        99,
    ),
    ("williams_r", lambda d: ta.momentum.williams_r(d.High, d.Low, d.Close), lambda f: f * 100, 99),
    ("cci", lambda d: ta.trend.cci(d.High, d.Low, d.Close), lambda f: f * 100.0, 99),
    ("adx", lambda d: ta.trend.adx(d.High, d.Low, d.Close), lambda f: f * 100.0, 1000),
    ("volatility_24", _log_return_volatility, lambda f: f, 99),
    (
        "sma_distance_50",
        lambda d: d.Close / ta.trend.sma_indicator(d.Close, 50) - 1,
        lambda f: f,
        99,
    ),
    (
        "ema_distance_50",
        lambda d: d.Close / ta.trend.ema_indicator(d.Close, 50) - 1,
        lambda f: f,
        1000,
    ),
]


@pytest.mark.parametrize(
    ("name", "reference", "unscale", "first"),
    TA_CROSS_CHECKS,
    ids=[case[0] for case in TA_CROSS_CHECKS],
)
def test_feature_agrees_with_the_ta_library(
    name: str,
    reference: Callable[[pd.DataFrame], pd.Series],
    unscale: Callable[[pd.Series], pd.Series],
    first: int,
    bundled_bars: pd.DataFrame,
    batch_features: pd.DataFrame,
) -> None:
    # Arrange
    data = bundled_bars.rename(columns=str.capitalize)
    feature = batch_features[name]
    if name.startswith("macd_"):
        feature = feature * bundled_bars["close"]

    # Act
    theirs = reference(data).to_numpy(dtype=float)
    mine = unscale(feature).to_numpy(dtype=float)

    # Assert
    np.testing.assert_allclose(mine[first:], theirs[first:], rtol=1e-7, atol=1e-9, err_msg=name)
