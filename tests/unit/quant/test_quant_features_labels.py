"""Triple-barrier labels and purged, embargoed walk-forward folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tai_quant.features import Label, TripleBarrier, purged_walk_forward_folds
from tai_quant.features.labels import triple_barrier_labels


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
