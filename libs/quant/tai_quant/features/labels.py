"""Triple-barrier labels: which of take-profit, stop-loss or time is hit first.

For the bar at position t (entry at its close) with ATR(t) = Wilder ATR of bars 0..t: the
upper barrier is ``close[t] + take_profit * ATR``, the lower ``close[t] - stop_loss * ATR``,
the vertical barrier ``max_horizon`` bars later. Walking bars t+1 .. t+max_horizon, the first
bar whose high reaches the upper barrier labels LONG, whose low reaches the lower barrier
labels SHORT; a bar touching both is ambiguous (the path inside the bar is unknown) and labels
NEUTRAL, as does reaching the vertical barrier untouched. Bars without a full horizon after
them or without an ATR yet get no label. ``end_position`` is the bar at which the label is
known: purging uses it so that no training label overlaps a test window.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import pandas as pd

from tai_quant import indicators as ti
from tai_quant.features.batch import normalise_ohlcv


class Label(IntEnum):
    """Classes of the triple-barrier label (also the classifier's class indices)."""

    SHORT = 0
    NEUTRAL = 1
    LONG = 2


@dataclass(frozen=True)
class TripleBarrier:
    """Barrier parameters: multiples of ATR and the maximum holding horizon in bars."""

    take_profit: float = 1.5
    stop_loss: float = 1.5
    max_horizon: int = 24
    atr_period: int = 14

    def __post_init__(self) -> None:
        if self.take_profit <= 0.0 or self.stop_loss <= 0.0:
            raise ValueError("take_profit and stop_loss must be positive multiples of ATR")
        if self.max_horizon < 1 or self.atr_period < 1:
            raise ValueError("max_horizon and atr_period must be at least 1")


def triple_barrier_labels(
    frame: pd.DataFrame, barrier: TripleBarrier | None = None
) -> pd.DataFrame:
    """Return ``label``, ``start_position``, ``end_position`` for every labelable bar.

    The result's index is the subset of ``frame``'s index that has a label.
    """
    parameters = barrier or TripleBarrier()
    bars = normalise_ohlcv(frame)
    closes = bars["close"].to_numpy(np.float64)
    highs = bars["high"].to_numpy(np.float64)
    lows = bars["low"].to_numpy(np.float64)
    size = closes.shape[0]
    average_range = ti.atr(
        bars["high"], bars["low"], bars["close"], parameters.atr_period
    ).to_numpy()
    horizon = parameters.max_horizon
    candidates = np.arange(size - horizon) if size > horizon else np.arange(0)
    candidates = candidates[~np.isnan(average_range[candidates])]
    upper = closes[candidates] + parameters.take_profit * average_range[candidates]
    lower = closes[candidates] - parameters.stop_loss * average_range[candidates]
    labels = np.full(candidates.shape[0], int(Label.NEUTRAL), dtype=np.int64)
    end = candidates + horizon
    resolved = np.zeros(candidates.shape[0], dtype=bool)
    # One vectorised pass per step of the horizon: O(n * horizon), no Python loop over bars.
    for step in range(1, horizon + 1):
        position = candidates + step
        touched_upper = highs[position] >= upper
        touched_lower = lows[position] <= lower
        newly = ~resolved & (touched_upper | touched_lower)
        labels[newly & touched_upper & ~touched_lower] = int(Label.LONG)
        labels[newly & touched_lower & ~touched_upper] = int(Label.SHORT)
        end[newly] = position[newly]
        resolved |= newly
    return pd.DataFrame(
        {"label": labels, "start_position": candidates, "end_position": end},
        index=bars.index[candidates],
    )
