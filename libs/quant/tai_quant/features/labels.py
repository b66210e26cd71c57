"""Triple-barrier labels: does a long, or a short, trade at this bar reach its target first?

For the bar at position t (entry at its close) with ATR(t) = Wilder ATR of bars 0..t, a long
trade targets ``close[t] + take_profit * ATR`` with its stop at ``close[t] - stop_loss * ATR``,
a short trade the mirror image, both for at most ``max_horizon`` bars. Walking bars
t+1 .. t+max_horizon, a trade *wins* when a bar reaches its target before any bar reached its
stop; a bar reaching both is a loss (the path inside the bar is unknown: the conservative rule
the strategies and the backtest broker use). The label is LONG when the long trade wins, SHORT
when the short trade wins, the one whose target is reached first when both do (possible only
when the target is nearer than the stop), NEUTRAL otherwise (neither wins, or both on the same
bar). With a symmetric barrier this is the classic label: LONG when the upper barrier is hit
first, SHORT the lower, NEUTRAL for a bar touching both or for the time barrier. So a class
means exactly the trade the ``ml_driven`` strategy places on it.

Bars without a full horizon after them or without an ATR yet get no label. ``end_position``
is the bar at which the label is known: purging uses it so that no training label overlaps a
test window.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt
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


_NEVER = int(np.iinfo(np.int64).max)


def _first_step(touched: npt.NDArray[np.bool_], steps: int) -> npt.NDArray[np.int64]:
    """Return, per row of an (n, steps) mask, the first step (1-based) set, else _NEVER."""
    any_set = touched.any(axis=1)
    first = np.argmax(touched, axis=1).astype(np.int64) + 1
    return np.where(any_set, first, _NEVER).astype(np.int64)


def _decide(
    long_target: npt.NDArray[np.int64],
    long_stop: npt.NDArray[np.int64],
    short_target: npt.NDArray[np.int64],
    short_stop: npt.NDArray[np.int64],
    horizon: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return (label, step the label is known) from the first steps of each barrier."""
    long_wins = long_target < long_stop
    short_wins = short_target < short_stop
    labels = np.full(long_target.shape[0], int(Label.NEUTRAL), dtype=np.int64)
    is_long = long_wins & (~short_wins | (long_target < short_target))
    is_short = short_wins & (~long_wins | (short_target < long_target))
    labels[is_long] = int(Label.LONG)
    labels[is_short] = int(Label.SHORT)
    long_resolved = np.minimum(np.minimum(long_target, long_stop), horizon)
    short_resolved = np.minimum(np.minimum(short_target, short_stop), horizon)
    known = np.maximum(long_resolved, short_resolved)
    known = np.where(is_long, long_target, known)
    known = np.where(is_short, short_target, known)
    return labels, known.astype(np.int64)


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
    entry = closes[candidates][:, None]
    atr_value = average_range[candidates][:, None]
    # (n, horizon) windows of the bars after each entry: O(n * horizon), no loop over bars.
    window = candidates[:, None] + np.arange(1, horizon + 1)[None, :]
    future_highs, future_lows = highs[window], lows[window]
    far, near = parameters.take_profit * atr_value, parameters.stop_loss * atr_value
    labels, known = _decide(
        _first_step(future_highs >= entry + far, horizon),
        _first_step(future_lows <= entry - near, horizon),
        _first_step(future_lows <= entry - far, horizon),
        _first_step(future_highs >= entry + near, horizon),
        horizon,
    )
    return pd.DataFrame(
        {"label": labels, "start_position": candidates, "end_position": candidates + known},
        index=bars.index[candidates],
    )


class BarrierLabel:
    """The label of one entry, resolved bar by bar (the online twin of the batch labels)."""

    __slots__ = (
        "_horizon",
        "_levels",
        "_long_stop",
        "_long_target",
        "_short_stop",
        "_short_target",
        "_step",
    )

    def __init__(self, close: float, atr_value: float, barrier: TripleBarrier) -> None:
        far, near = barrier.take_profit * atr_value, barrier.stop_loss * atr_value
        # long target, long stop, short target, short stop
        self._levels = (close + far, close - near, close - far, close + near)
        self._horizon = barrier.max_horizon
        self._step = 0
        self._long_target = self._long_stop = self._short_target = self._short_stop = _NEVER

    def update(self, high: float, low: float) -> Label | None:
        """Consume the next bar; return the label once it is known, else None."""
        self._step += 1
        step = self._step
        long_target, long_stop, short_target, short_stop = self._levels
        if self._long_target == _NEVER and high >= long_target:
            self._long_target = step
        if self._long_stop == _NEVER and low <= long_stop:
            self._long_stop = step
        if self._short_target == _NEVER and low <= short_target:
            self._short_target = step
        if self._short_stop == _NEVER and high >= short_stop:
            self._short_stop = step
        label, known = _decide_one(
            self._long_target, self._long_stop, self._short_target, self._short_stop, self._horizon
        )
        return label if known <= step else None


def _decide_one(
    long_target: int, long_stop: int, short_target: int, short_stop: int, horizon: int
) -> tuple[Label, int]:
    """Return (label, step it is known) of one entry: the scalar twin of ``_decide``."""
    long_wins = long_target < long_stop
    short_wins = short_target < short_stop
    if long_wins and (not short_wins or long_target < short_target):
        return Label.LONG, long_target
    if short_wins and (not long_wins or short_target < long_target):
        return Label.SHORT, short_target
    long_resolved = min(long_target, long_stop, horizon)
    short_resolved = min(short_target, short_stop, horizon)
    return Label.NEUTRAL, max(long_resolved, short_resolved)


@dataclass(frozen=True)
class BarrierTrades:
    """The result of trading signals at the barriers: per-bar returns and per-trade returns."""

    returns: npt.NDArray[np.float64]
    """Simple return of each bar (0 while flat), marked at the close or at the exit price."""
    trade_returns: npt.NDArray[np.float64]
    """Net return of each closed trade, in entry order."""
    entries: npt.NDArray[np.int64]
    """Bar positions of the entries (the signal bars)."""
    exits: npt.NDArray[np.int64]
    """Bar positions where each trade closed."""
    exposure: float
    """Share of bars holding a position."""


def simulate_barrier_trades(
    frame: pd.DataFrame,
    directions: npt.ArrayLike,
    barrier: TripleBarrier,
    *,
    commission: float = 0.0,
) -> BarrierTrades:
    """Trade ``directions`` (+1 long, -1 short, 0 none per bar) at the triple barrier.

    A signal opens a trade at its bar's close when flat, with the stop ``stop_loss`` and the
    target ``take_profit`` ATRs away (the labels' barriers); each later bar closes it at the
    stop when its range reaches the stop (first, when both could have hit: the conservative
    rule of the strategies and the backtest broker), else at the target, else at the close
    ``max_horizon`` bars after entry. A bar that ended a trade opens none. ``commission`` is
    charged per side as a fraction of notional. Pure and causal: a trade entered at bar t
    reads only bars t .. t + max_horizon.
    """
    bars = normalise_ohlcv(frame)
    closes = bars["close"].to_numpy(np.float64)
    highs = bars["high"].to_numpy(np.float64)
    lows = bars["low"].to_numpy(np.float64)
    signals = np.asarray(directions, dtype=np.float64)
    if signals.shape != closes.shape:
        raise ValueError(f"{signals.shape[0]} directions for {closes.shape[0]} bars")
    average_range = ti.atr(bars["high"], bars["low"], bars["close"], barrier.atr_period)
    ranges = average_range.to_numpy(np.float64)
    size = closes.shape[0]
    returns = np.zeros(size, dtype=np.float64)
    trades: list[float] = []
    entries: list[int] = []
    exits: list[int] = []
    held = 0
    position = 0
    while position < size:
        direction = signals[position]
        atr_value = ranges[position]
        if direction == 0.0 or not atr_value > 0.0 or position + 1 >= size:
            position += 1
            continue
        sign = 1.0 if direction > 0 else -1.0
        entry = closes[position]
        stop = entry - sign * barrier.stop_loss * atr_value
        target = entry + sign * barrier.take_profit * atr_value
        last = min(position + barrier.max_horizon, size - 1)
        previous = entry
        returns[position] -= commission
        exit_bar, exit_price = last, closes[last]
        for step in range(position + 1, last + 1):
            stopped = lows[step] <= stop if sign > 0 else highs[step] >= stop
            reached = highs[step] >= target if sign > 0 else lows[step] <= target
            if stopped or reached:
                exit_bar, exit_price = step, stop if stopped else target
                break
            if step == last:
                break  # the time barrier: out at this close
            returns[step] = sign * (closes[step] / previous - 1.0)
            previous = closes[step]
        returns[exit_bar] = sign * (exit_price / previous - 1.0) - commission
        trades.append(sign * (exit_price / entry - 1.0) - 2.0 * commission)
        entries.append(position)
        exits.append(exit_bar)
        held += exit_bar - position
        position = exit_bar + 1  # no re-entry on the bar that ended a trade
    return BarrierTrades(
        returns=returns,
        trade_returns=np.asarray(trades, dtype=np.float64),
        entries=np.asarray(entries, dtype=np.int64),
        exits=np.asarray(exits, dtype=np.int64),
        exposure=held / size if size else 0.0,
    )
