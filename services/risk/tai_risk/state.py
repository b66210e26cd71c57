"""Risk's view of the book: trading state, the projected portfolio and recent market data."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar, cast

import numpy as np
import pandas as pd

from tai_events.market import BarClosed
from tai_events.orders import Side
from tai_events.risk import TradingState
from tai_quant.indicators import AverageTrueRange

T = TypeVar("T")
_BUY = Side.BUY

SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
"""Trading states ordered by how much they restrict (also the tai_risk_trading_state gauge)."""


@dataclass
class SymbolMarket:
    """One symbol's recent bars: closes, the bar interval and a streaming ATR with its history."""

    interval: timedelta
    last_bar_at: datetime
    close_times: deque[int]
    """Bar close times, nanoseconds since the epoch (cheap to turn into an array)."""
    close_values: deque[float]
    atr: AverageTrueRange
    atr_history: deque[float]
    atr_baseline: float | None = None
    """Mean ATR over the window before the last bar (what a spike is measured against)."""

    @property
    def last_close(self) -> float:
        """Return the close of the last bar."""
        return self.close_values[-1]

    @property
    def atr_value(self) -> float | None:
        """Return the current ATR (None during warm-up)."""
        return self.atr.value

    def atr_mean(self) -> float | None:
        """Return the mean of the ATR over its history window, once the window is full."""
        history = self.atr_history
        if history.maxlen is None or len(history) < history.maxlen:
            return None
        return sum(history) / len(history)


class MarketHistory:
    """Recent bars per symbol, bounded in size; returns frames are cached until the next bar."""

    def __init__(
        self, *, max_bars: int = 2_000, atr_period: int = 14, atr_mean_bars: int = 100
    ) -> None:
        self.max_bars = max_bars
        self.atr_period = atr_period
        self.atr_mean_bars = atr_mean_bars
        self.symbols: dict[str, SymbolMarket] = {}
        self._version = 0
        self._cache: tuple[tuple[object, ...], pd.DataFrame] | None = None
        self._memo: dict[tuple[object, ...], object] = {}
        self._memo_version = 0

    def on_bar(self, bar: BarClosed) -> SymbolMarket:
        """Add a closed bar (a bar not newer than the last one is ignored)."""
        market = self.symbols.get(bar.symbol)
        if market is None:
            market = SymbolMarket(
                interval=bar.timeframe.duration,
                last_bar_at=bar.closed_at,
                close_times=deque(maxlen=self.max_bars),
                close_values=deque(maxlen=self.max_bars),
                atr=AverageTrueRange(self.atr_period),
                atr_history=deque(maxlen=self.atr_mean_bars),
            )
            self.symbols[bar.symbol] = market
        elif (market.close_values and bar.closed_at <= market.last_bar_at) or (
            bar.timeframe.duration != market.interval
        ):
            # older, or another timeframe of the symbol (its returns and ATR use one interval)
            return market
        market.last_bar_at = bar.closed_at
        market.close_times.append(pd.Timestamp(bar.closed_at).value)
        market.close_values.append(bar.close)
        market.atr_baseline = market.atr_mean()
        value = market.atr.update(bar.high, bar.low, bar.close)
        if value is not None:
            market.atr_history.append(value)
        self._version += 1
        return market

    def last_bar_at(self, symbol: str) -> datetime | None:
        """Return when the symbol's last bar closed."""
        market = self.symbols.get(symbol)
        return market.last_bar_at if market else None

    def latest_time(self) -> datetime | None:
        """Return the newest bar close over every symbol (market time)."""
        return max((market.last_bar_at for market in self.symbols.values()), default=None)

    def atr(self, symbol: str) -> float | None:
        """Return the symbol's ATR, if warmed up."""
        market = self.symbols.get(symbol)
        return market.atr_value if market else None

    def memo(self, key: tuple[object, ...], compute: Callable[[], T]) -> T:
        """Return ``compute()``, remembered for ``key`` until the next bar arrives."""
        if self._memo_version != self._version:
            self._memo.clear()
            self._memo_version = self._version
        if key not in self._memo:
            self._memo[key] = compute()
        return cast(T, self._memo[key])

    def returns(self, symbols: tuple[str, ...], since: datetime | None) -> pd.DataFrame:
        """Return simple per-bar returns, one column per symbol, rows aligned on bar close.

        Only bars closed at or after ``since`` count; rows missing a symbol are dropped. The
        index holds close times in nanoseconds since the epoch.
        """
        key = (self._version, symbols, since)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        start = None if since is None else pd.Timestamp(since).value
        columns = {}
        for symbol in symbols:
            market = self.symbols.get(symbol)
            if market is None:
                continue
            count = len(market.close_values)
            times = np.fromiter(market.close_times, dtype=np.int64, count=count)
            closes = np.fromiter(market.close_values, dtype=np.float64, count=count)
            if start is not None:
                inside = times >= start
                times, closes = times[inside], closes[inside]
            if closes.shape[0] < 2:
                continue
            columns[symbol] = pd.Series(closes[1:] / closes[:-1] - 1.0, index=times[1:])
        frame = pd.DataFrame(columns).dropna() if columns else pd.DataFrame()
        self._cache = (key, frame)
        return frame


@dataclass
class PortfolioState:
    """Positions risk has approved (projected: fills plus approved, unfilled orders).

    Risk decides on projected positions so a decision never depends on whether the previous
    approval's fill has arrived yet: the same request stream gives the same decisions.
    """

    equity: float
    projected_positions: dict[str, float] = field(default_factory=dict)
    last_prices: dict[str, float] = field(default_factory=dict)
    strategy_positions: dict[tuple[str, str], float] = field(default_factory=dict)
    """Projected positions per (strategy, symbol): what a reduce-only exit may close."""
    decided_order_ids: set[str] = field(default_factory=set)
    market: MarketHistory = field(default_factory=MarketHistory)
    request_times: dict[str, deque[datetime]] = field(default_factory=dict)
    """Signal times of each strategy's recent requests (for the order-rate limit)."""

    def projected_quantity(self, symbol: str) -> float:
        """Return the signed projected position in a symbol."""
        return self.projected_positions.get(symbol, 0.0)

    def after(self, symbol: str, side: Side, quantity: float) -> float:
        """Return the projected position if an order were approved."""
        change = quantity if side is _BUY else -quantity  # side.sign, without the enum lookups
        return self.projected_positions.get(symbol, 0.0) + change

    def strategy_quantity(self, strategy: str, symbol: str) -> float:
        """Return the signed projected position of one strategy in a symbol."""
        return self.strategy_positions.get((strategy, symbol), 0.0)

    def record_approval(self, symbol: str, side: Side, quantity: float, strategy: str) -> None:
        """Add an approved order to the projected positions (the account's and its strategy's)."""
        self.projected_positions[symbol] = self.after(symbol, side, quantity)
        key = (strategy, symbol)
        change = quantity if side is _BUY else -quantity
        self.strategy_positions[key] = self.strategy_positions.get(key, 0.0) + change

    def release(self, symbol: str, side: Side, quantity: float, strategy: str) -> None:
        """Take the unfilled part of an order that ended early out of the projections."""
        self.record_approval(symbol, Side.SELL if side is _BUY else _BUY, quantity, strategy)

    def record_request(self, strategy: str, signal_time: datetime) -> None:
        """Count a decided request towards its strategy's order rate (last minute only)."""
        times = self.request_times.setdefault(strategy, deque())
        times.append(signal_time)
        while times and times[0] <= signal_time - timedelta(minutes=1):
            times.popleft()

    def requests_within(self, strategy: str, start: datetime) -> int:
        """Return how many of a strategy's requests had a signal time after ``start``."""
        return sum(1 for moment in self.request_times.get(strategy, ()) if moment > start)

    def open_position_count(self) -> int:
        """Return how many symbols have a non-zero projected position."""
        return sum(1 for quantity in self.projected_positions.values() if abs(quantity) > 1e-9)

    def mark(self, symbol: str, fallback: float) -> float:
        """Return the symbol's last price, or ``fallback`` when risk has none."""
        return self.last_prices.get(symbol, fallback)


@dataclass
class TradingStateMachine:
    """ACTIVE / REDUCING / HALTED, the reason, and whether the next session lifts it."""

    state: TradingState = TradingState.ACTIVE
    reason: str = "initial state"
    until_next_session: bool = False

    def transition(
        self, target: TradingState, reason: str, *, until_next_session: bool = False
    ) -> TradingState | None:
        """Move to a state; return the previous state, or None when nothing changed."""
        if target is self.state:
            return None
        previous = self.state
        self.state = target
        self.reason = reason
        self.until_next_session = until_next_session
        return previous

    def would_escalate(self, target: TradingState, *, until_next_session: bool = False) -> bool:
        """Return True when :meth:`escalate` would change the state or pin it."""
        if target is self.state:
            return self.until_next_session and not until_next_session
        return SEVERITY[target] > SEVERITY[self.state]

    def escalate(
        self, target: TradingState, reason: str, *, until_next_session: bool = False
    ) -> TradingState | None:
        """Move to a stricter state only (breakers never relax the state themselves).

        A breaker that needs an admin to lift it also pins a same-level state that the next
        session would otherwise lift.
        """
        if target is self.state and self.until_next_session and not until_next_session:
            self.reason = reason
            self.until_next_session = False
            return None
        if SEVERITY[target] <= SEVERITY[self.state]:
            return None
        return self.transition(target, reason, until_next_session=until_next_session)
