"""Walk-forward: window geometry, no lookahead, and a full run on the bundled EURUSD bars."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_ingestion.samples import sample_path
from tai_optimizer.evaluation import EvaluationSettings, evaluate
from tai_optimizer.walkforward import (
    GridSelector,
    Selection,
    WalkForwardConfig,
    plan_windows,
    run_walk_forward,
)
from tai_quant.metrics import infer_periods_per_year
from tai_strategy.search_spaces import sma_cross_search_space


def _eurusd() -> pd.DataFrame:
    return pd.read_csv(sample_path("EURUSD.csv"), index_col=0, parse_dates=True)


@given(
    bars=st.integers(50, 3000),
    train=st.integers(2, 400),
    test=st.integers(2, 200),
    extra_step=st.integers(0, 100),
    gap=st.integers(0, 50),
    anchored=st.booleans(),
)
def test_windows_keep_test_bars_after_training_and_gap(
    bars: int, train: int, test: int, extra_step: int, gap: int, anchored: bool
) -> None:
    # Arrange
    config = WalkForwardConfig(
        train_bars=train,
        test_bars=test,
        step_bars=test + extra_step,
        gap_bars=gap,
        anchored=anchored,
    )

    # Act
    windows = plan_windows(bars, config)

    # Assert
    for window in windows:
        assert window.test_start - window.train_end == gap
        assert window.test_end - window.test_start == test
        assert window.test_end <= bars
        assert (
            window.train_start == 0 if anchored else window.train_end - window.train_start == train
        )
    for earlier, later in itertools.pairwise(windows):
        assert later.test_start >= earlier.test_end  # out-of-sample bars never overlap


def test_overlapping_test_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="step_bars"):
        WalkForwardConfig(train_bars=100, test_bars=50, step_bars=40)


@dataclass
class RecordingSelector:
    """Wraps a selector and remembers the exact bars each selection was given."""

    inner: GridSelector
    seen: list[pd.DatetimeIndex] = field(default_factory=list)

    def __call__(self, train: pd.DataFrame) -> Selection:
        self.seen.append(pd.DatetimeIndex(train.index))
        return self.inner(train)


def test_out_of_sample_windows_never_touch_the_bars_that_chose_their_parameters() -> None:
    # Arrange
    frame = _eurusd().iloc[:2200]
    settings = EvaluationSettings(periods_per_year=infer_periods_per_year(frame.index))
    space = sma_cross_search_space(fast=(5, 20, 5), slow=(20, 60, 20))
    selector = RecordingSelector(GridSelector(space, settings))
    config = WalkForwardConfig(train_bars=720, test_bars=168, step_bars=168, gap_bars=60)

    # Act
    result = run_walk_forward(
        frame, space=space, selector=selector, config=config, settings=settings
    )

    # Assert
    assert len(result.windows) == len(selector.seen) > 3
    for item, chosen_on in zip(result.windows, selector.seen, strict=True):
        scored = item.out_of_sample.equity.index
        primed_from = frame.index[item.window.test_start - item.warm_up_bars]
        assert chosen_on.max() < primed_from  # even warm-up bars come after the training set
        assert scored.min() == frame.index[item.window.test_start]
        assert scored.max() == frame.index[item.window.test_end - 1]
        assert chosen_on.max() < frame.index[item.window.test_start - config.gap_bars]


def test_changing_future_bars_never_changes_the_parameters_chosen_before_them() -> None:
    # Arrange: the same data, but every bar from window 3's test start on is scrambled
    frame = _eurusd().iloc[:2200]
    settings = EvaluationSettings(periods_per_year=infer_periods_per_year(frame.index))
    space = sma_cross_search_space(fast=(5, 20, 5), slow=(20, 60, 20))
    config = WalkForwardConfig(train_bars=720, test_bars=168, step_bars=168, gap_bars=24)
    cut = plan_windows(len(frame), config)[3].test_start
    scrambled = frame.copy()
    tail = scrambled.iloc[cut:][["Open", "High", "Low", "Close"]].to_numpy()[::-1]
    scrambled.iloc[
        cut:, [scrambled.columns.get_loc(name) for name in ("Open", "High", "Low", "Close")]
    ] = tail

    # Act
    original = run_walk_forward(
        frame,
        space=space,
        selector=GridSelector(space, settings),
        config=config,
        settings=settings,
    )
    altered = run_walk_forward(
        scrambled,
        space=space,
        selector=GridSelector(space, settings),
        config=config,
        settings=settings,
    )

    # Assert: windows whose training ends before the cut chose exactly the same parameters
    for before, after in zip(original.windows, altered.windows, strict=True):
        if before.window.train_end <= cut:
            assert before.parameters == after.parameters
            assert before.in_sample.sharpe == after.in_sample.sharpe
    assert any(
        before.out_of_sample.sharpe != after.out_of_sample.sharpe
        for before, after in zip(original.windows, altered.windows, strict=True)
        if before.window.test_start >= cut
    )


def test_walk_forward_on_eurusd_reports_in_and_out_of_sample_results() -> None:
    # Arrange
    frame = _eurusd()
    settings = EvaluationSettings(periods_per_year=infer_periods_per_year(frame.index))
    space = sma_cross_search_space(fast=(5, 25, 5), slow=(30, 90, 30))

    # Act
    result = run_walk_forward(
        frame,
        space=space,
        selector=GridSelector(space, settings),
        config=WalkForwardConfig(),
        settings=settings,
    )
    summary = result.summary()

    # Assert
    assert len(result.windows) == 25  # (5000 - 720 - 24 - 168) // 168 + 1
    assert {"mean_sharpe", "mean_return_pct", "trades"} <= set(summary["in_sample"])
    assert {"stitched_sharpe", "stitched_return_pct"} <= set(summary["out_of_sample"])
    stitched = result.stitched_equity
    assert len(stitched) == sum(item.out_of_sample.bars for item in result.windows)
    assert stitched.iloc[0] == settings.cash
    # Compounding each window's returns gives the stitched final equity.
    growth = 1.0
    for item in result.windows:
        growth *= float(item.out_of_sample.equity.iloc[-1] / item.out_of_sample.equity.iloc[0])
    assert stitched.iloc[-1] == pytest.approx(settings.cash * growth)
    assert set(summary["parameter_stability"]) == {"fast", "slow"}
    # In-sample results are optimised, so on average they beat out-of-sample.
    assert summary["in_sample"]["mean_sharpe"] > summary["out_of_sample"]["mean_sharpe"]


def test_evaluation_refuses_a_warm_up_longer_than_the_strategy_needs() -> None:
    frame = _eurusd().iloc[:300]
    settings = EvaluationSettings()
    with pytest.raises(ValueError, match="warm_up_bars"):
        evaluate(frame, {"fast": 5, "slow": 20}, settings, warm_up_bars=21)


def test_evaluation_with_warm_up_never_trades_before_the_scored_bars() -> None:
    # Arrange
    frame = _eurusd().iloc[:600]
    settings = EvaluationSettings()

    # Act
    evaluation = evaluate(frame, {"fast": 5, "slow": 20}, settings, warm_up_bars=20)

    # Assert
    assert evaluation.equity.index[0] == frame.index[20]
    assert evaluation.equity.iloc[0] == settings.cash
