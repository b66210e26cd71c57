"""What a backtest needs from its bars beyond the bars themselves, tabulated once.

A run's bookkeeping (marks for sizing and margin, the equity curve) needs every bar's time and
close as arrays. They are a pure function of the bars, independent of any strategy, risk or
broker decision, so a ``BarFeed`` computes them once when a data set is loaded and every run
over it reuses them: optimisation sweeps, walk-forward and Monte Carlo replay the same bars
thousands of times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import overload

import numpy as np
import numpy.typing as npt
import pandas as pd

from tai_events.market import BarClosed


@dataclass(frozen=True, slots=True)
class BookAfterFill:
    """Cash and the filled symbol's position right after one fill (for the equity curve)."""

    bar_index: int
    symbol: str
    cash: float
    quantity: float


_OPENED_AT = attrgetter("opened_at")
_SYMBOL = attrgetter("symbol")
_CLOSE = attrgetter("close")


@dataclass(frozen=True)
class BarTape:
    """What a run needs from its bars beyond the bars themselves, computed once, vectorised.

    ``closes`` holds, per bar (row) and symbol (column), the symbol's latest close up to and
    including that bar (NaN before its first bar).
    """

    times: pd.DatetimeIndex
    symbols: tuple[str, ...]
    columns: dict[str, int]
    closes: npt.NDArray[np.float64]

    @classmethod
    def of(cls, bars: Sequence[BarClosed]) -> BarTape:
        """Check the bars are in time order and tabulate their times and closes."""
        count = len(bars)
        # One C-level pass per column (map + attrgetter): these are the only per-bar passes
        # outside the loop itself.
        times = pd.DatetimeIndex(list(map(_OPENED_AT, bars)))
        if count > 1 and not times.is_monotonic_increasing:
            stamps = times.asi8
            index = int(np.flatnonzero(stamps[1:] < stamps[:-1])[0]) + 1
            raise ValueError(f"bars are not in time order at index {index} ({times[index]})")
        names = list(map(_SYMBOL, bars))
        symbols = tuple(sorted(set(names)))
        columns = {name: position for position, name in enumerate(symbols)}
        values = np.fromiter(map(_CLOSE, bars), dtype=np.float64, count=count)
        if len(symbols) <= 1:
            closes = values.reshape(count, 1)
        else:
            closes = np.full((count, len(symbols)), np.nan)
            rows = np.fromiter(map(columns.__getitem__, names), dtype=np.int64, count=count)
            closes[np.arange(count), rows] = values
            closes = _forward_filled(closes)
        return cls(times=times, symbols=symbols, columns=columns, closes=closes)

    @classmethod
    def of_columns(
        cls, symbol: str, times: pd.DatetimeIndex, closes: npt.NDArray[np.float64]
    ) -> BarTape:
        """Tabulate one symbol's bars from their columns (a loaded data set: no pass over bars)."""
        if len(times) != len(closes):
            raise ValueError(f"{len(times)} times but {len(closes)} closes")
        if len(times) > 1 and not times.is_monotonic_increasing:
            raise ValueError("bars are not in time order")
        return cls(
            times=times,
            symbols=(symbol,),
            columns={symbol: 0},
            closes=np.asarray(closes, dtype=np.float64).reshape(len(closes), 1),
        )

    def marks_before(self, index: int) -> dict[str, float]:
        """Return each symbol's latest close among the bars before ``index``."""
        if index <= 0:
            return {}
        row = self.closes[index - 1].tolist()  # Python floats: cheaper per item than numpy's
        return {
            name: close
            for name, close in zip(self.symbols, row, strict=True)
            if not math.isnan(close)  # NaN: no bar of the symbol yet
        }

    def equity(self, books: Sequence[BookAfterFill], cash: float) -> pd.Series:
        """Return equity at each bar close from the book after each fill (cash and positions
        step at fills).

        With many symbols the curve has one point per timestamp, after the last bar of it.
        """
        count = len(self.times)
        if count == 0:
            return pd.Series(dtype=np.float64, name="equity")
        cash_after = np.full(count, np.nan)
        quantity_after = np.full((count, len(self.symbols)), np.nan)
        columns = self.columns
        for book in books:  # in fill order: the last fill of a bar is what the bar closes with
            cash_after[book.bar_index] = book.cash
            quantity_after[book.bar_index, columns[book.symbol]] = book.quantity
        if np.isnan(cash_after[0]):
            cash_after[0] = cash
        quantity_after[0] = np.nan_to_num(quantity_after[0], nan=0.0)
        held = _forward_filled(quantity_after)
        equity = _forward_filled(cash_after) + np.sum(held * np.nan_to_num(self.closes), axis=1)
        series = pd.Series(equity, index=self.times, name="equity", dtype=np.float64)
        if len(self.symbols) == 1:
            return series  # one bar per timestamp already (the tape refuses disorder)
        return series[~series.index.duplicated(keep="last")]


def _forward_filled(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Return ``values`` with each NaN replaced by the last number above it (row 0 has none)."""
    rows = np.arange(values.shape[0]).reshape((-1,) + (1,) * (values.ndim - 1))
    known = np.where(np.isnan(values), 0, rows)
    return np.take_along_axis(values, np.maximum.accumulate(known, axis=0), axis=0)


class BarFeed(Sequence[BarClosed]):
    """Bars in time order with their tape: what a loaded data set hands to every run."""

    __slots__ = ("bars", "tape")

    def __init__(self, bars: Iterable[BarClosed], tape: BarTape | None = None) -> None:
        """Hold ``bars`` with their tape (tabulated here unless the loader has it already)."""
        self.bars: tuple[BarClosed, ...] = tuple(bars)
        self.tape = BarTape.of(self.bars) if tape is None else tape
        if len(self.tape.times) != len(self.bars):
            raise ValueError(f"a tape of {len(self.tape.times)} bars for {len(self.bars)} bars")

    def __len__(self) -> int:
        return len(self.bars)

    def __iter__(self) -> Iterator[BarClosed]:
        return iter(self.bars)

    @overload
    def __getitem__(self, index: int) -> BarClosed: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[BarClosed]: ...

    def __getitem__(self, index: int | slice) -> BarClosed | Sequence[BarClosed]:
        return self.bars[index]
