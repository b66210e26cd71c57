"""Indicators: batch == streaming on real bars, cross-checks against ``ta``, edge cases."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import ta  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from tai_quant import indicators as ti

AGREEMENT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Case:
    """One indicator output: how to compute it in batch and how to stream it."""

    name: str
    batch: Callable[[pd.DataFrame], pd.Series]
    make: Callable[[], Any]
    inputs: tuple[str, ...]
    read: Callable[[Any], float | None]


def _value(indicator: Any) -> float | None:
    value: float | None = indicator.value
    return value


def _field(field: str) -> Callable[[Any], float | None]:
    def read(indicator: Any) -> float | None:
        values = indicator.values
        return None if values is None else float(getattr(values, field))

    return read


def _column(
    compute: Callable[[pd.DataFrame], pd.DataFrame], column: str
) -> Callable[[pd.DataFrame], pd.Series]:
    def select(bars: pd.DataFrame) -> pd.Series:
        return compute(bars)[column]

    return select


HLC = ("High", "Low", "Close")
CASES = [
    Case(
        "sma", lambda d: ti.sma(d.Close, 20), lambda: ti.SimpleMovingAverage(20), ("Close",), _value
    ),
    Case(
        "ema",
        lambda d: ti.ema(d.Close, 20),
        lambda: ti.ExponentialMovingAverage(20),
        ("Close",),
        _value,
    ),
    Case(
        "rsi",
        lambda d: ti.rsi(d.Close, 14),
        lambda: ti.RelativeStrengthIndex(14),
        ("Close",),
        _value,
    ),
    Case("true_range", lambda d: ti.true_range(d.High, d.Low, d.Close), ti.TrueRange, HLC, _value),
    Case(
        "atr",
        lambda d: ti.atr(d.High, d.Low, d.Close, 14),
        lambda: ti.AverageTrueRange(14),
        HLC,
        _value,
    ),
    *(
        Case(
            f"macd_{column}",
            _column(lambda d: ti.macd(d.Close), column),
            ti.MovingAverageConvergenceDivergence,
            ("Close",),
            _field(column),
        )
        for column in ("line", "signal", "histogram")
    ),
    *(
        Case(
            f"bollinger_{column}",
            _column(lambda d: ti.bollinger_bands(d.Close, 20, 2.0), column),
            ti.BollingerBands,
            ("Close",),
            _field(column),
        )
        for column in ("middle", "upper", "lower", "percent_b", "width")
    ),
    *(
        Case(
            f"stochastic_{column}",
            _column(lambda d: ti.stochastic(d.High, d.Low, d.Close), column),
            ti.StochasticOscillator,
            HLC,
            _field(column),
        )
        for column in ("k", "d")
    ),
    Case("williams_r", lambda d: ti.williams_r(d.High, d.Low, d.Close), ti.WilliamsR, HLC, _value),
    Case("cci", lambda d: ti.cci(d.High, d.Low, d.Close), ti.CommodityChannelIndex, HLC, _value),
    *(
        Case(
            f"adx_{column}",
            _column(lambda d: ti.adx(d.High, d.Low, d.Close), column),
            ti.AverageDirectionalIndex,
            HLC,
            _field(column),
        )
        for column in ("adx", "plus_di", "minus_di")
    ),
    Case(
        "obv", lambda d: ti.obv(d.Close, d.Volume), ti.OnBalanceVolume, ("Close", "Volume"), _value
    ),
    Case("zscore", lambda d: ti.rolling_zscore(d.Close, 20), ti.RollingZScore, ("Close",), _value),
    Case(
        "volatility",
        lambda d: ti.rolling_volatility(d.Close, 20, periods_per_year=6240),
        lambda: ti.RollingVolatility(20, periods_per_year=6240),
        ("Close",),
        _value,
    ),
]


def _stream(case: Case, bars: pd.DataFrame) -> tuple[np.ndarray, Any]:
    indicator = case.make()
    columns = [bars[name].to_numpy(dtype=float) for name in case.inputs]
    outputs = np.full(len(bars), np.nan)
    for position in range(len(bars)):
        returned = indicator.update(*(column[position] for column in columns))
        read = case.read(indicator)
        if returned is None:
            assert read is None
            assert not indicator.ready
        else:
            assert indicator.ready
            assert returned == indicator.value
            outputs[position] = read
    return outputs, indicator


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_streaming_indicator_matches_batch_on_every_bar_after_warm_up(
    case: Case, eurusd: pd.DataFrame
) -> None:
    # Arrange
    expected = case.batch(eurusd).to_numpy(dtype=float)

    # Act
    streamed, indicator = _stream(case, eurusd)

    # Assert
    warm = indicator.warmup_period - 1
    assert np.all(np.isnan(streamed[:warm]))
    assert not np.isnan(streamed[warm:]).any()
    assert not np.isnan(expected[warm:]).any()
    np.testing.assert_allclose(streamed[warm:], expected[warm:], rtol=0, atol=AGREEMENT_TOLERANCE)


@pytest.mark.parametrize(
    ("name", "ours", "theirs", "first"),
    [
        (
            "sma",
            lambda d: ti.sma(d.Close, 20),
            lambda d: ta.trend.sma_indicator(d.Close, 20),
            19,
        ),
        # ta seeds its EMAs/Wilder averages with the first value, we with the SMA: compare once
        # the seed has decayed ((1 - alpha) ** 1000 is far below the tolerance).
        ("ema", lambda d: ti.ema(d.Close, 20), lambda d: ta.trend.ema_indicator(d.Close, 20), 1000),
        ("rsi", lambda d: ti.rsi(d.Close), lambda d: ta.momentum.rsi(d.Close, 14), 1000),
        (
            "macd_line",
            lambda d: ti.macd(d.Close)["line"],
            lambda d: ta.trend.macd(d.Close),
            1000,
        ),
        (
            "macd_signal",
            lambda d: ti.macd(d.Close)["signal"],
            lambda d: ta.trend.macd_signal(d.Close),
            1000,
        ),
        (
            "macd_histogram",
            lambda d: ti.macd(d.Close)["histogram"],
            lambda d: ta.trend.macd_diff(d.Close),
            1000,
        ),
        # Same convention as ta (first TR = high - low, SMA seed at index n-1): exact from bar n-1.
        (
            "atr",
            lambda d: ti.atr(d.High, d.Low, d.Close),
            lambda d: ta.volatility.average_true_range(d.High, d.Low, d.Close),
            13,
        ),
        (
            "bollinger_middle",
            lambda d: ti.bollinger_bands(d.Close)["middle"],
            lambda d: ta.volatility.bollinger_mavg(d.Close),
            19,
        ),
        (
            "bollinger_upper",
            lambda d: ti.bollinger_bands(d.Close)["upper"],
            lambda d: ta.volatility.bollinger_hband(d.Close),
            19,
        ),
        (
            "bollinger_lower",
            lambda d: ti.bollinger_bands(d.Close)["lower"],
            lambda d: ta.volatility.bollinger_lband(d.Close),
            19,
        ),
        (
            "bollinger_percent_b",
            lambda d: ti.bollinger_bands(d.Close)["percent_b"],
            lambda d: ta.volatility.bollinger_pband(d.Close),
            19,
        ),
        # ta reports the band width in percent of the middle band, we as a fraction.
        (
            "bollinger_width",
            lambda d: ti.bollinger_bands(d.Close)["width"] * 100.0,
            lambda d: ta.volatility.bollinger_wband(d.Close),
            19,
        ),
        (
            "stochastic_k",
            lambda d: ti.stochastic(d.High, d.Low, d.Close)["k"],
            lambda d: ta.momentum.stoch(d.High, d.Low, d.Close),
            13,
        ),
        (
            "stochastic_d",
            lambda d: ti.stochastic(d.High, d.Low, d.Close)["d"],
            lambda d: ta.momentum.stoch_signal(d.High, d.Low, d.Close),
            15,
        ),
        (
            "williams_r",
            lambda d: ti.williams_r(d.High, d.Low, d.Close),
            lambda d: ta.momentum.williams_r(d.High, d.Low, d.Close),
            13,
        ),
        (
            "cci",
            lambda d: ti.cci(d.High, d.Low, d.Close),
            lambda d: ta.trend.cci(d.High, d.Low, d.Close),
            19,
        ),
        (
            "adx",
            lambda d: ti.adx(d.High, d.Low, d.Close)["adx"],
            lambda d: ta.trend.adx(d.High, d.Low, d.Close),
            27,
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_batch_indicator_agrees_with_ta(
    name: str,
    ours: Callable[[pd.DataFrame], pd.Series],
    theirs: Callable[[pd.DataFrame], pd.Series],
    first: int,
    eurusd: pd.DataFrame,
) -> None:
    # Act
    mine = ours(eurusd).to_numpy(dtype=float)
    reference = theirs(eurusd).to_numpy(dtype=float)

    # Assert
    np.testing.assert_allclose(mine[first:], reference[first:], rtol=1e-9, atol=1e-9, err_msg=name)


def test_directional_indicators_agree_with_ta_except_its_unfilled_edge_bars(
    eurusd: pd.DataFrame,
) -> None:
    # ta leaves +DI/-DI at 0 on the first smoothed bar (index n) and on the last bar.
    period = 14
    mine = ti.adx(eurusd.High, eurusd.Low, eurusd.Close, period)
    indicator = ta.trend.ADXIndicator(eurusd.High, eurusd.Low, eurusd.Close, period)

    np.testing.assert_allclose(
        mine["plus_di"].to_numpy()[period + 1 : -1], indicator.adx_pos().to_numpy()[period + 1 : -1]
    )
    np.testing.assert_allclose(
        mine["minus_di"].to_numpy()[period + 1 : -1],
        indicator.adx_neg().to_numpy()[period + 1 : -1],
    )


def test_obv_moves_like_ta_except_on_unchanged_closes(eurusd: pd.DataFrame) -> None:
    # ta starts at the first volume and counts an unchanged close as a rise; we start at 0 and
    # leave OBV unchanged then. The bar-to-bar moves agree wherever the close changed.
    mine = np.diff(ti.obv(eurusd.Close, eurusd.Volume).to_numpy())
    reference = np.diff(ta.volume.on_balance_volume(eurusd.Close, eurusd.Volume).to_numpy())
    changed = np.diff(eurusd.Close.to_numpy()) != 0.0

    assert changed.sum() > 0.9 * changed.size
    np.testing.assert_array_equal(mine[changed], reference[changed])
    assert np.all(mine[~changed] == 0.0)


def test_rolling_statistics_match_an_exact_two_pass_computation(eurusd: pd.DataFrame) -> None:
    # Arrange
    close = eurusd.Close
    windows = np.lib.stride_tricks.sliding_window_view(close.to_numpy(), 20)
    log_windows = np.lib.stride_tricks.sliding_window_view(np.diff(np.log(close.to_numpy())), 20)

    # Act
    zscore = ti.rolling_zscore(close, 20).to_numpy()[19:]
    volatility = ti.rolling_volatility(close, 20).to_numpy()[20:]

    # Assert
    expected_z = (windows[:, -1] - windows.mean(axis=1)) / windows.std(axis=1)
    np.testing.assert_allclose(zscore, expected_z, rtol=0, atol=1e-12)
    np.testing.assert_allclose(volatility, log_windows.std(axis=1, ddof=1), rtol=1e-12)


def test_ema_is_seeded_with_the_sma_of_the_first_period_values() -> None:
    close = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0])

    result = ti.ema(close, 3).to_numpy()

    assert np.isnan(result[:2]).all()
    assert result[2] == pytest.approx(2.0)
    assert result[3] == pytest.approx(0.5 * 4.0 + 0.5 * 2.0)
    assert result[4] == pytest.approx(0.5 * 5.0 + 0.5 * 3.0)


def test_rsi_is_100_when_prices_only_rise_and_50_when_flat() -> None:
    rising = ti.rsi(pd.Series(np.arange(1.0, 31.0)), 14)
    flat = ti.rsi(pd.Series(np.full(30, 7.0)), 14)

    assert (rising.dropna() == 100.0).all()
    assert (flat.dropna() == 50.0).all()


def test_flat_prices_give_neutral_oscillators_instead_of_division_by_zero() -> None:
    bars = pd.DataFrame({"High": [2.0] * 40, "Low": [2.0] * 40, "Close": [2.0] * 40})

    stochastic = ti.stochastic(bars.High, bars.Low, bars.Close).dropna()
    percent_r = ti.williams_r(bars.High, bars.Low, bars.Close).dropna()
    channel = ti.cci(bars.High, bars.Low, bars.Close).dropna()
    zscore = ti.rolling_zscore(bars.Close, 10).dropna()
    bands = ti.bollinger_bands(bars.Close, 10)

    assert (stochastic == 50.0).all().all()
    assert (percent_r == -50.0).all()
    assert (channel == 0.0).all()
    assert (zscore == 0.0).all()
    assert bands["percent_b"].isna().all()
    assert (bands["upper"].dropna() == 2.0).all()


def test_streaming_indicator_rejects_non_finite_input() -> None:
    average = ti.SimpleMovingAverage(3)

    with pytest.raises(ValueError, match="finite"):
        average.update(math.nan)


def test_batch_indicator_rejects_nan_input() -> None:
    with pytest.raises(ValueError, match="finite"):
        ti.sma(pd.Series([1.0, math.nan, 3.0]), 2)


@pytest.mark.parametrize("period", [0, -1, 2.5, True])
def test_invalid_period_is_rejected(period: Any) -> None:
    with pytest.raises(ValueError, match="period"):
        ti.SimpleMovingAverage(period)


def test_streaming_statistics_do_not_drift_on_a_long_stream() -> None:
    # Arrange: a long random walk far from zero, the worst case for running sums.
    generator = np.random.default_rng(7)
    prices = 10_000.0 + np.cumsum(generator.normal(0.0, 1.0, 200_000))
    average = ti.SimpleMovingAverage(50)
    zscore = ti.RollingZScore(50)
    bands = ti.BollingerBands(50)

    # Act
    for price in prices:
        average.update(price)
        zscore.update(price)
        bands.update(price)

    # Assert: each is compared with an exact computation over the final window.
    window = prices[-50:]
    mean = math.fsum(window) / 50
    deviation = math.sqrt(math.fsum((window - mean) ** 2) / 50)
    assert average.value == pytest.approx(mean, abs=1e-9)
    assert zscore.value == pytest.approx((window[-1] - mean) / deviation, abs=1e-9)
    assert bands.values is not None
    assert bands.values.upper == pytest.approx(mean + 2.0 * deviation, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=1.0, max_value=1_000.0), min_size=1, max_size=80),
    st.integers(min_value=1, max_value=12),
)
def test_streaming_extremes_match_rolling_max_and_min(values: list[float], period: int) -> None:
    # Arrange
    high = pd.Series(values)
    low = pd.Series(values) - 0.5
    close = pd.Series(values) - 0.25
    indicator = ti.WilliamsR(period)

    # Act
    streamed = [
        indicator.update(top, bottom, last)
        for top, bottom, last in zip(high, low, close, strict=True)
    ]

    # Assert
    expected = ti.williams_r(high, low, close, period).to_numpy()
    for position, value in enumerate(streamed):
        if position < period - 1:
            assert value is None
        else:
            assert value == pytest.approx(expected[position], abs=1e-9)
