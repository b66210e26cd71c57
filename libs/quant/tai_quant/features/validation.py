"""Purged and embargoed walk-forward cross-validation.

The labelled samples are cut, in time order, into ``folds + 1`` blocks; fold k tests block
k + 1 and trains on everything before it (an expanding window). A sample's label spans the
bars ``start_position .. end_position``. Around every test block, training and validation
samples are purged when their label span reaches into the test block or the ``embargo`` bars
before it, so no training label overlaps the test window (nor sees the bars that serial
correlation would leak). The last ``validation_fraction`` of each training window becomes the
validation set (early stopping and calibration only), purged from the training part the same
way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Fold:
    """Row positions (into the labelled samples) of one walk-forward fold."""

    train: IntArray
    validation: IntArray
    test: IntArray


def _purge(
    candidates: IntArray, end_positions: IntArray, window_start_bar: int, embargo: int
) -> IntArray:
    """Keep the candidates whose label is known before the embargo ahead of a window."""
    return candidates[end_positions[candidates] < window_start_bar - embargo]


def purged_walk_forward_folds(
    start_positions: npt.ArrayLike,
    end_positions: npt.ArrayLike,
    *,
    folds: int = 4,
    embargo: int = 24,
    validation_fraction: float = 0.2,
) -> list[Fold]:
    """Return the walk-forward folds of samples with label spans ``[start, end]`` in bars."""
    starts = np.asarray(start_positions, dtype=np.int64)
    ends = np.asarray(end_positions, dtype=np.int64)
    if starts.shape != ends.shape or starts.ndim != 1:
        raise ValueError("start and end positions must be one-dimensional and the same length")
    if np.any(np.diff(starts) <= 0):
        raise ValueError("samples must be in strictly increasing time order")
    if np.any(ends < starts):
        raise ValueError("a label cannot end before it starts")
    if folds < 1 or embargo < 0 or not 0.0 < validation_fraction < 1.0:
        raise ValueError("need folds >= 1, embargo >= 0 and 0 < validation_fraction < 1")
    count = starts.shape[0]
    boundaries = np.linspace(0, count, folds + 2).astype(np.int64)
    result: list[Fold] = []
    for fold in range(folds):
        test = np.arange(boundaries[fold + 1], boundaries[fold + 2], dtype=np.int64)
        if test.size == 0:
            continue
        before_test = _purge(np.arange(test[0], dtype=np.int64), ends, starts[test[0]], embargo)
        split = round(before_test.size * (1.0 - validation_fraction))
        validation = before_test[split:]
        train = before_test[:split]
        if validation.size:
            train = _purge(train, ends, starts[validation[0]], embargo)
        if train.size == 0 or validation.size == 0:
            continue
        result.append(Fold(train=train, validation=validation, test=test))
    return result
