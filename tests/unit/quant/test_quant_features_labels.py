"""Triple-barrier labels and purged, embargoed walk-forward folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tai_quant.features import Label, TripleBarrier, purged_walk_forward_folds
from tai_quant.features.labels import (
    BarrierLabel,
    simulate_barrier_trades,
    triple_barrier_labels,
)
from tai_quant.indicators import atr


def _bars(closes: list[float], *, spread: float = 0.001) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(closes), freq="h", tz="UTC")
    close = np.asarray(closes)
    return pd.DataFrame(
        {
            "open": close,
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": np.full(len(closes), 100.0),
        },
        index=index,
    )


BARRIER = TripleBarrier(take_profit=1.0, stop_loss=1.0, max_horizon=3, atr_period=2)


def test_price_that_rises_through_take_profit_first_is_labelled_long() -> None:
    # ATR(2) of a flat series with a 0.002 range is 0.002: the upper barrier is close + 0.002.
    bars = _bars([1.0, 1.0, 1.0, 1.0015, 1.003, 1.0, 1.0])
    labels = triple_barrier_labels(bars, BARRIER)
    row = labels.loc[bars.index[1]]
    assert row["label"] == Label.LONG
    assert row["end_position"] == 3  # the high of bar 3 (1.0025) reaches 1.002


def test_price_that_falls_through_stop_loss_first_is_labelled_short() -> None:
    bars = _bars([1.0, 1.0, 1.0, 0.9985, 0.997, 1.0, 1.0])
    labels = triple_barrier_labels(bars, BARRIER)
    assert labels.loc[bars.index[1], "label"] == Label.SHORT


def test_flat_price_reaches_the_time_barrier_and_is_neutral() -> None:
    bars = _bars([1.0] * 8)
    labels = triple_barrier_labels(bars, BARRIER)
    assert set(labels["label"]) == {Label.NEUTRAL}
    assert (labels["end_position"] == labels["start_position"] + 3).all()


def test_bar_touching_both_barriers_is_neutral() -> None:
    bars = _bars([1.0, 1.0, 1.0, 1.0, 1.0])
    bars.loc[bars.index[2], "high"] = 1.01
    bars.loc[bars.index[2], "low"] = 0.99
    labels = triple_barrier_labels(bars, BARRIER)
    assert labels.loc[bars.index[1], "label"] == Label.NEUTRAL
    assert labels.loc[bars.index[1], "end_position"] == 2


def test_bars_without_a_full_horizon_or_atr_get_no_label() -> None:
    bars = _bars([1.0] * 10)
    labels = triple_barrier_labels(bars, BARRIER)
    assert labels["start_position"].tolist() == list(range(1, 7))


def _spans(lengths: list[int]) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(len(lengths), dtype=np.int64)
    return starts, starts + np.asarray(lengths, dtype=np.int64)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=40), min_size=60, max_size=400),
    folds=st.integers(min_value=1, max_value=5),
    embargo=st.integers(min_value=0, max_value=10),
)
def test_no_training_or_validation_label_overlaps_its_test_window_or_embargo(
    lengths: list[int], folds: int, embargo: int
) -> None:
    starts, ends = _spans(lengths)
    for fold in purged_walk_forward_folds(starts, ends, folds=folds, embargo=embargo):
        test_start = starts[fold.test[0]]
        # every label used to fit or stop the model is known before the embargo ahead of test
        assert (ends[fold.train] < test_start - embargo).all()
        assert (ends[fold.validation] < test_start - embargo).all()
        # training labels do not reach into the validation window either
        assert (ends[fold.train] < starts[fold.validation[0]] - embargo).all()
        assert fold.train.max() < fold.validation.min() <= fold.validation.max() < fold.test.min()


def test_walk_forward_folds_expand_and_test_consecutive_blocks() -> None:
    starts, ends = _spans([5] * 500)
    folds = purged_walk_forward_folds(starts, ends, folds=4, embargo=3)
    assert len(folds) == 4
    tested = np.concatenate([fold.test for fold in folds])
    assert (np.diff(tested) == 1).all()
    sizes = [fold.train.size + fold.validation.size for fold in folds]
    assert sizes == sorted(sizes)


def test_labels_spanning_into_the_test_window_are_purged() -> None:
    # One long label early on reaches far ahead: it must leave every fold it would leak into.
    lengths = [2] * 300
    lengths[50] = 200
    starts, ends = _spans(lengths)
    folds = purged_walk_forward_folds(starts, ends, folds=2, embargo=0)
    for fold in folds:
        if starts[fold.test[0]] <= 250:
            assert 50 not in fold.train
            assert 50 not in fold.validation


def test_folds_refuse_unsorted_samples() -> None:
    with pytest.raises(ValueError, match="increasing"):
        purged_walk_forward_folds([3, 2, 1], [4, 3, 2])


ASYMMETRIC = TripleBarrier(take_profit=2.0, stop_loss=1.0, max_horizon=6, atr_period=2)


def test_asymmetric_label_says_which_direction_wins_its_own_trade() -> None:
    # ATR 0.002: a long targets +0.004 with its stop at -0.002; a short the mirror image.
    # The price first dips 0.0025 (the long is stopped), then falls to -0.0045: the short's
    # target, before its stop at +0.002 — a SHORT, although the long's stop came first.
    bars = _bars([1.0, 1.0, 1.0, 0.9975, 0.996, 0.9955, 0.9955, 0.9955, 0.9955, 0.9955])
    labels = triple_barrier_labels(bars, ASYMMETRIC)
    row = labels.loc[bars.index[1]]
    assert row["label"] == Label.SHORT
    assert row["end_position"] == 4  # the low of bar 4 (0.995) reaches 0.996


def test_asymmetric_label_is_neutral_when_both_trades_are_stopped() -> None:
    # up 0.0025 stops the short, down 0.0025 stops the long: neither reaches its target
    bars = _bars([1.0, 1.0, 1.0, 1.0015, 0.9985, 1.0, 1.0, 1.0, 1.0, 1.0])
    labels = triple_barrier_labels(bars, ASYMMETRIC)
    row = labels.loc[bars.index[1]]
    assert row["label"] == Label.NEUTRAL
    assert row["end_position"] == 4  # known once the second trade is stopped


@settings(max_examples=80, deadline=None)
@given(
    steps=st.lists(st.floats(min_value=-0.004, max_value=0.004), min_size=30, max_size=120),
    take_profit=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
    stop_loss=st.sampled_from([0.5, 1.0, 2.0]),
    horizon=st.integers(min_value=1, max_value=8),
)
def test_online_label_agrees_with_the_batch_label_bar_for_bar(
    steps: list[float], take_profit: float, stop_loss: float, horizon: int
) -> None:
    # Arrange: a random walk and one barrier, labelled in batch
    closes = list(1.0 + np.cumsum(steps))
    bars = _bars(closes, spread=0.0015)
    barrier = TripleBarrier(take_profit, stop_loss, horizon, atr_period=3)
    labels = triple_barrier_labels(bars, barrier)
    atr_values = atr(bars["high"], bars["low"], bars["close"], 3).to_numpy()
    for position, label, end in labels[["start_position", "label", "end_position"]].itertuples(
        index=False
    ):
        # Act: resolve the same entry bar by bar
        online = BarrierLabel(closes[position], atr_values[position], barrier)
        resolved = None
        for later in range(position + 1, position + horizon + 1):
            resolved = online.update(bars["high"].iloc[later], bars["low"].iloc[later])
            if resolved is not None:
                break
        # Assert: same class, known at the same bar
        assert resolved == label
        assert later == end


def test_simulated_trades_take_each_signal_at_the_barriers_one_at_a_time() -> None:
    # Arrange: a long signal on bar 2 (entry 1.0, ATR 0.002: target 1.004, stop 0.998),
    # another on bar 3 while that trade is open, a short on bar 6 that times out
    bars = _bars([1.0, 1.0, 1.0, 1.002, 1.0045, 1.0045, 1.0045, 1.0045, 1.0045, 1.0045])
    directions = np.zeros(len(bars))
    directions[[2, 3]] = 1.0
    directions[6] = -1.0
    barrier = TripleBarrier(take_profit=2.0, stop_loss=1.0, max_horizon=3, atr_period=2)

    # Act
    trades = simulate_barrier_trades(bars, directions, barrier, commission=0.0)

    # Assert: the long reaches its target on bar 4; the short exits at bar 9's close
    assert trades.entries.tolist() == [2, 6]
    assert trades.exits.tolist() == [4, 9]
    assert trades.trade_returns[0] == pytest.approx(0.004)
    assert trades.trade_returns[1] == pytest.approx(0.0)
    assert np.prod(1.0 + trades.returns[2:5]) == pytest.approx(1.004)


def test_a_later_signal_never_changes_an_earlier_trade() -> None:
    bars = _bars(list(1.0 + np.cumsum(np.random.default_rng(5).normal(0, 0.002, 200))))
    directions = np.sign(np.random.default_rng(6).normal(size=200)).astype(float)
    barrier = TripleBarrier(take_profit=1.5, stop_loss=1.0, max_horizon=5, atr_period=3)
    full = simulate_barrier_trades(bars, directions, barrier)
    cut = 120
    changed = directions.copy()
    changed[cut:] = -changed[cut:]
    other = simulate_barrier_trades(bars, changed, barrier)
    settled = full.exits < cut
    assert np.array_equal(full.trade_returns[settled], other.trade_returns[: settled.sum()])
