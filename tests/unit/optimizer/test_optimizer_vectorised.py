"""The vectorised sma_cross engine gives exactly the event-driven engine's trades."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tai_ingestion
from tai_events.market import Timeframe
from tai_ingestion.replay import load_bars
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import BacktestConfig, EventDrivenBacktester
from tai_optimizer.backtest.sizing import AllInWholeUnits
from tai_optimizer.backtest.vectorised import run_sma_cross, sma_difference
from tai_optimizer.synthetic import bars_from_frame
from tai_strategy.sma_cross import CrossingWindows, SmaCrossParameters, SmaCrossStrategy

DATA = Path(tai_ingestion.__file__).parent / "data"


def _fsum_difference(values: list[float], position: int, fast: int, slow: int) -> float | None:
    """Return the correctly rounded SMA(fast) - SMA(slow) at ``position`` (None before slow)."""
    if position + 1 < slow:
        return None
    window = values[position + 1 - slow : position + 1]
    return math.fsum(window[-fast:]) / fast - math.fsum(window) / slow


def _frame(bars: list) -> pd.DataFrame:  # type: ignore[type-arg]
    return pd.DataFrame(
        {"Open": [bar.open for bar in bars], "Close": [bar.close for bar in bars]},
        index=pd.DatetimeIndex([bar.opened_at for bar in bars]),
    )


@pytest.mark.parametrize("sizer", [None, AllInWholeUnits()])
@pytest.mark.parametrize(
    ("file", "symbol", "timeframe", "fast", "slow"),
    [("GOOG.csv", "GOOG", Timeframe.D1, 10, 20), ("EURUSD.csv", "EURUSD", Timeframe.H1, 10, 30)],
)
def test_vectorised_trades_equal_event_driven_trades(
    file: str,
    symbol: str,
    timeframe: Timeframe,
    fast: int,
    slow: int,
    sizer: AllInWholeUnits | None,
) -> None:
    # Arrange
    bars = load_bars(DATA / file, symbol=symbol, timeframe=timeframe).bars
    costs = CostModel(commission_rate=0.001, slippage_bps=1.0, spread=0.0001)
    config = BacktestConfig(cash=10_000, costs=costs, sizer=sizer)
    strategy = SmaCrossStrategy(SmaCrossParameters(fast=fast, slow=slow, quantity=7))
    # Act
    event = EventDrivenBacktester(strategy, config).run(bars)
    vectorised = run_sma_cross(
        _frame(bars),
        fast=fast,
        slow=slow,
        quantity=7,
        cash=10_000,
        costs=costs,
        sizer=sizer,
        symbol=symbol,
    )
    # Assert
    assert len(event.trades) > 20
    assert vectorised.trades == event.trades
    assert np.array_equal(vectorised.equity.to_numpy(), event.equity.to_numpy())


@settings(max_examples=30, deadline=None)
@given(
    steps=st.lists(st.sampled_from([-2, -1, 0, 0, 1, 2]), min_size=40, max_size=150),
    fast=st.integers(1, 5),
    extra=st.integers(1, 10),
)
def test_vectorised_matches_event_driven_on_ties_and_flat_prices(
    steps: list[int], fast: int, extra: int
) -> None:
    # Arrange: prices on a coarse grid make exact SMA ties (difference == 0) common.
    close = 100.0 + np.cumsum(np.asarray(steps, dtype=np.float64)) * 0.25
    close = np.maximum(close, 1.0)
    opens = np.concatenate(([close[0]], close[:-1]))
    frame = pd.DataFrame(
        {
            "Open": opens,
            "High": np.maximum(opens, close),
            "Low": np.minimum(opens, close),
            "Close": close,
            "Volume": 1.0,
        },
        index=pd.date_range("2024-01-01", periods=close.shape[0], freq="h", tz="UTC"),
    )
    bars = bars_from_frame(frame, symbol="TEST", timeframe=Timeframe.H1)
    slow = fast + extra
    costs = CostModel(commission_rate=0.001)
    # Act
    event = EventDrivenBacktester(
        SmaCrossStrategy(SmaCrossParameters(fast=fast, slow=slow, quantity=3)),
        BacktestConfig(cash=10_000, costs=costs),
    ).run(bars)
    vectorised = run_sma_cross(
        frame, fast=fast, slow=slow, quantity=3, cash=10_000, costs=costs, symbol="TEST"
    )
    # Assert
    assert vectorised.trades == event.trades
    assert [fill.bar_index for fill in event.fills] == vectorised.fill_bars.tolist()


@given(
    st.lists(st.floats(1e-2, 1e4, allow_nan=False), min_size=2, max_size=120),
    st.integers(1, 8),
    st.integers(1, 30),
)
def test_integer_window_sums_equal_the_strategy_bit_for_bit(
    values: list[float], fast: int, extra: int
) -> None:
    # Arrange: prices spanning six decades fit the exact int64 path (2**85 headroom)
    slow = fast + extra
    close = np.array(values)
    # Act
    difference = sma_difference(close, fast, slow)
    # Assert: the correctly rounded averages, bar by bar, and so the live strategy's signs
    windows = CrossingWindows(fast, slow)
    for position, value in enumerate(values):
        expected = _fsum_difference(values, position, fast, slow)
        sign = windows.push(value)
        if expected is None:
            assert np.isnan(difference[position])
            assert math.isnan(sign)
        else:
            assert difference[position] == expected
            assert np.sign(difference[position]) == sign


@given(
    st.lists(st.floats(1e-6, 1e9, allow_nan=False), min_size=2, max_size=120),
    st.integers(1, 8),
    st.integers(1, 30),
)
def test_differences_too_wide_for_int64_still_have_the_strategys_sign(
    values: list[float], fast: int, extra: int
) -> None:
    # Beyond the exact path, array sums are approximate but recomputed exactly near zero,
    # so every cross (a sign change) is the strategy's.
    slow = fast + extra
    difference = sma_difference(np.array(values), fast, slow)
    windows = CrossingWindows(fast, slow)
    for value, approximate in zip(values, difference, strict=True):
        sign = windows.push(value)
        if not math.isnan(sign):
            assert np.sign(approximate) == sign
