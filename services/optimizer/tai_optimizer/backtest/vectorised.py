"""Vectorised sma_cross backtest for optimisation sweeps: the event engine's trades, faster.

Signals are computed on whole arrays; the simulation then walks only the crossings (O(trades)),
applying the very same cost model, sizers, ``Account`` and trade ledger as the event-driven
engine, so both produce identical trades. The averages are the correctly rounded ones whose
sign ``SmaCrossStrategy`` trades on: near-ties, where array rounding could flip a sign, are
recomputed with ``math.fsum``.
Risk is assumed to approve every order (true with the backtest's default wide limits).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from tai_core.accounting import QUANTITY_EPSILON, Account
from tai_optimizer.backtest.broker import ExitReason
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.sizing import AllInWholeUnits, FixedQuantity, SizingContext, TradeRecord
from tai_quant.trades import ClosedTrade, TradeLedger

FloatArray = npt.NDArray[np.float64]


_EXACT_SUM_LIMIT = 2.0**85
"""Window sums of scaled closes below this split exactly into two int64 halves."""
_HALF = 2.0**32


def _window_sums(
    high: npt.NDArray[np.int64], low: npt.NDArray[np.int64], length: int, count: int
) -> FloatArray:
    """Return each trailing window's exact sum, rounded once to float: high * 2**32 + low."""
    with np.errstate(over="ignore"):
        # int64 cumulative sums may wrap around; every window difference is still exact.
        high_sums = high[length:] - high[: high.shape[0] - length]
        low_sums = low[length:] - low[: low.shape[0] - length]
    offset = high_sums.shape[0] - count
    # Both halves are exact floats and one IEEE addition rounds the exact total once.
    return high_sums[offset:].astype(np.float64) * _HALF + low_sums[offset:].astype(np.float64)


def _exact_sma_difference(close: FloatArray, fast: int, slow: int) -> FloatArray | None:
    """Return SMA(fast) - SMA(slow) of the correctly rounded averages, or None if too wide.

    Every close times 2**scale is an integer (scale from the smallest binary exponent), split
    into exact 32-bit halves whose int64 cumulative sums give every window's exact sum; that
    sum rounded once to float, times 2**-scale, divided by the length is
    ``math.fsum(window) / length`` — bit for bit, in O(n) — whose sign the strategy trades on.
    """
    if close.size == 0 or not np.all(np.isfinite(close)):
        return None
    _, exponents = np.frexp(close)
    scale = int(np.max(53 - exponents))
    largest = float(np.max(np.abs(close)))
    if scale > 1000 or largest * 2.0**scale * slow >= _EXACT_SUM_LIMIT:
        return None
    scaled = close * 2.0**scale  # exact: a power-of-two product of an exact integer
    high_part = np.floor(scaled / _HALF)
    low_part = scaled - high_part * _HALF  # exact, in [0, 2**32)
    with np.errstate(over="ignore"):
        high = np.concatenate(([0], np.cumsum(high_part.astype(np.int64), dtype=np.int64)))
        low = np.concatenate(([0], np.cumsum(low_part.astype(np.int64), dtype=np.int64)))
    count = close.shape[0] - slow + 1
    fast_sums = _window_sums(high, low, fast, count)
    slow_sums = _window_sums(high, low, slow, count)
    unit = 2.0**-scale
    return fast_sums * unit / fast - slow_sums * unit / slow


def sma_difference(close: FloatArray, fast: int, slow: int) -> FloatArray:
    """Return SMA(fast) - SMA(slow) per bar (NaN before ``slow`` bars), exact near zero."""
    count = close.shape[0]
    difference = np.full(count, np.nan)
    if count < slow:
        return difference
    exact = _exact_sma_difference(close, fast, slow)
    if exact is not None:
        difference[slow - 1 :] = exact
        return difference
    windows = np.lib.stride_tricks.sliding_window_view(close, slow)
    slow_mean = windows.sum(axis=1) / slow
    fast_mean = windows[:, slow - fast :].sum(axis=1) / fast
    approximate = fast_mean - slow_mean
    # Summing k terms errs by at most (k - 1) * eps * sum|x|; anything within a generous
    # multiple of that of zero is recomputed exactly, as the strategy does.
    tolerance = 4.0 * slow * sys.float_info.epsilon * float(np.max(np.abs(close)))
    for position in np.flatnonzero(np.abs(approximate) <= tolerance):
        window = close[position : position + slow].tolist()
        approximate[position] = math.fsum(window[-fast:]) / fast - math.fsum(window) / slow
    difference[slow - 1 :] = approximate
    return difference


def sma_cross_signals(close: FloatArray, fast: int, slow: int) -> npt.NDArray[np.int8]:
    """Return +1 where a golden cross reverses the strategy to long, -1 for short, else 0."""
    difference = sma_difference(close, fast, slow)
    previous = difference[:-1]
    current = difference[1:]
    raw = np.zeros(close.shape[0], dtype=np.int8)
    raw[1:][(previous <= 0) & (current > 0)] = 1
    raw[1:][(previous >= 0) & (current < 0)] = -1
    events = np.flatnonzero(raw)
    if events.size:
        # The strategy ignores a cross towards the direction it already holds.
        directions = raw[events]
        repeated = np.zeros(events.size, dtype=bool)
        repeated[1:] = directions[1:] == directions[:-1]
        raw[events[repeated]] = 0
    return raw


@dataclass(frozen=True)
class VectorisedResult:
    """Trades, equity curve and fills (as arrays) of a vectorised run."""

    trades: list[ClosedTrade]
    equity: pd.Series
    fill_bars: npt.NDArray[np.int64]
    fill_quantities: FloatArray
    fill_prices: FloatArray

    @property
    def final_equity(self) -> float:
        """Return the equity after the last bar."""
        return float(self.equity.iloc[-1])


def run_sma_cross(
    frame: pd.DataFrame,
    *,
    fast: int,
    slow: int,
    quantity: float = 10_000.0,
    cash: float = 100_000.0,
    costs: CostModel | None = None,
    sizer: AllInWholeUnits | FixedQuantity | None = None,
    leverage: float = 1.0,
    symbol: str = "SYMBOL",
) -> VectorisedResult:
    """Backtest sma_cross on an OHLC frame (DatetimeIndex of bar open times).

    ``sizer`` None trades the strategy's quantity (reversals are twice the size), as the
    event engine does without a sizer.
    """
    costs = costs or CostModel()
    close = frame["Close"].to_numpy(dtype=np.float64)
    opens = frame["Open"].to_numpy(dtype=np.float64)
    # Only fill bars need a datetime: converting the whole index would cost O(bars) objects.
    index = pd.DatetimeIndex(frame.index)
    signals = sma_cross_signals(close, fast, slow)
    account = Account.opened_with(cash)
    ledger = TradeLedger()
    record = TradeRecord()
    fill_bars: list[int] = []
    fill_quantities: list[float] = []
    fill_prices: list[float] = []
    cash_after: list[float] = []
    held_after: list[float] = []
    held = 0.0
    for signal_bar in np.flatnonzero(signals).tolist():
        bar = signal_bar + 1
        if bar >= close.shape[0]:
            break
        direction = int(signals[signal_bar])
        open_price = float(opens[bar])
        if sizer is None:
            change = direction * (quantity if abs(held) <= QUANTITY_EPSILON else 2 * quantity)
        else:
            units = sizer.units(
                _context(
                    account,
                    symbol=symbol,
                    held=held,
                    direction=direction,
                    open_price=open_price,
                    costs=costs,
                    leverage=leverage,
                    record=record,
                )
            )
            change = direction * units - held
        if abs(change) <= QUANTITY_EPSILON:
            continue
        sign = 1 if change > 0 else -1
        price = costs.fill_price(sign, open_price)
        commission = costs.commission(abs(change), price)
        account, position, _ = account.apply_fill(symbol, change, price, commission)
        held = position.quantity
        for trade in ledger.apply(
            symbol,
            change,
            price,
            commission,
            time=index[bar].to_pydatetime(),
            bar=bar,
            reason=ExitReason.SIGNAL,
        ):
            record = record.with_trade(trade.pnl)
        fill_bars.append(bar)
        fill_quantities.append(change)
        fill_prices.append(price)
        cash_after.append(account.cash)
        held_after.append(held)
    equity = _equity(
        frame,
        close=close,
        cash=cash,
        fill_bars=fill_bars,
        held_after=held_after,
        cash_after=cash_after,
    )
    return VectorisedResult(
        trades=ledger.closed,
        equity=equity,
        fill_bars=np.asarray(fill_bars, dtype=np.int64),
        fill_quantities=np.asarray(fill_quantities, dtype=np.float64),
        fill_prices=np.asarray(fill_prices, dtype=np.float64),
    )


def _context(
    account: Account,
    *,
    symbol: str,
    held: float,
    direction: int,
    open_price: float,
    costs: CostModel,
    leverage: float,
    record: TradeRecord,
) -> SizingContext:
    # The same arithmetic as EventDrivenBacktester._sizing_context (one symbol).
    closing = 0.0
    if abs(held) > QUANTITY_EPSILON:
        closing = costs.commission(held, costs.fill_price(-1 if held > 0 else 1, open_price))
    equity = account.equity({symbol: open_price}) - closing
    return SizingContext(
        symbol=symbol,
        price=costs.fill_price(direction, open_price),
        equity=equity,
        available_margin=max(0.0, equity),
        leverage=leverage,
        costs=costs,
        record=record,
    )


def _equity(
    frame: pd.DataFrame,
    *,
    close: FloatArray,
    cash: float,
    fill_bars: list[int],
    held_after: list[float],
    cash_after: list[float],
) -> pd.Series:
    count = close.shape[0]
    cash_steps = np.full(count, np.nan)
    held_steps = np.full(count, np.nan)
    cash_steps[0], held_steps[0] = cash, 0.0
    for bar, held, balance in zip(fill_bars, held_after, cash_after, strict=True):
        cash_steps[bar] = balance
        held_steps[bar] = held
    cash_filled = pd.Series(cash_steps).ffill().to_numpy()
    held_filled = pd.Series(held_steps).ffill().to_numpy()
    return pd.Series(
        cash_filled + held_filled * close,
        index=pd.DatetimeIndex(frame.index),
        name="equity",
        dtype=np.float64,
    )
