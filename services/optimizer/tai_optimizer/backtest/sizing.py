"""Position sizing: how many units a target position holds.

A sizer answers at fill time, with the expected fill price, the way a broker executes an order
for a cash amount; the live services size at signal time with the strategy's own quantity.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Protocol

from tai_events.market import BarClosed
from tai_optimizer.backtest.costs import CostModel
from tai_quant.indicators import AverageTrueRange
from tai_quant.risk import kelly_fraction, position_size

FULL_SHARE = 1.0 - sys.float_info.epsilon
"""The share of available margin an all-in order uses (backtesting.py's default size)."""


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """Closed-trade history a sizer may learn from (win rate and payoff)."""

    wins: int = 0
    losses: int = 0
    gross_profit: float = 0.0
    gross_loss: float = 0.0

    @property
    def count(self) -> int:
        """Return the number of closed trades."""
        return self.wins + self.losses

    def with_trade(self, pnl: float) -> TradeRecord:
        """Return the record after one more closed trade."""
        if pnl > 0:
            return TradeRecord(self.wins + 1, self.losses, self.gross_profit + pnl, self.gross_loss)
        return TradeRecord(self.wins, self.losses + 1, self.gross_profit, self.gross_loss - pnl)


@dataclass(frozen=True, slots=True)
class SizingContext:
    """What a sizer may look at when it sizes one target position."""

    symbol: str
    price: float
    """Expected fill price (spread and slippage included)."""
    equity: float
    """Equity marked at the fill bar's open, after closing the current position in the symbol."""
    available_margin: float
    """Equity not tied up as margin by positions in other symbols."""
    leverage: float
    costs: CostModel
    record: TradeRecord


class Sizer(Protocol):
    """Turns a target direction into a number of units."""

    @property
    def observes_bars(self) -> bool:
        """Return True when the sizer must see every bar (e.g. to keep an ATR)."""
        ...

    def observe(self, bar: BarClosed) -> None:
        """Consume one bar (only called when ``observes_bars``)."""
        ...

    def units(self, context: SizingContext) -> float:
        """Return the absolute size of the target position (0 = do not trade)."""
        ...


def _affordable(context: SizingContext, units: float) -> float:
    """Cap units at what the available margin pays for, costs included."""
    per_unit = (
        context.price
        + context.costs.commission(1.0, context.price)
        - (context.costs.commission_per_trade)
    )
    budget = context.available_margin * context.leverage - context.costs.commission_per_trade
    return max(0.0, min(units, budget / per_unit)) if per_unit > 0 else 0.0


@dataclass(frozen=True, slots=True)
class FixedQuantity:
    """Always the same number of units."""

    quantity: float
    observes_bars: bool = False

    def observe(self, bar: BarClosed) -> None:
        """Ignore bars."""

    def units(self, context: SizingContext) -> float:
        """Return the fixed quantity."""
        return self.quantity


@dataclass(frozen=True, slots=True)
class FixedFraction:
    """A fixed fraction of equity (times leverage) as notional."""

    fraction: float
    observes_bars: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError("fraction must be in (0, 1]")

    def observe(self, bar: BarClosed) -> None:
        """Ignore bars."""

    def units(self, context: SizingContext) -> float:
        """Return fraction * equity * leverage / price, capped by the available margin."""
        wanted = self.fraction * context.equity * context.leverage / context.price
        return _affordable(context, wanted)


class AtrRisk:
    """Units that lose ``risk_fraction`` of equity when price moves ``atr_multiple`` ATRs."""

    observes_bars = True

    def __init__(self, risk_fraction: float, *, atr_multiple: float = 2.0, period: int = 14):
        if not 0.0 < risk_fraction <= 1.0:
            raise ValueError("risk_fraction must be in (0, 1]")
        if atr_multiple <= 0:
            raise ValueError("atr_multiple must be positive")
        self.risk_fraction = risk_fraction
        self.atr_multiple = atr_multiple
        self.period = period
        self._atr: dict[str, AverageTrueRange] = {}
        self._values: dict[str, float] = {}

    def observe(self, bar: BarClosed) -> None:
        """Update the symbol's ATR."""
        indicator = self._atr.get(bar.symbol)
        if indicator is None:
            indicator = self._atr[bar.symbol] = AverageTrueRange(self.period)
        value = indicator.update(bar.high, bar.low, bar.close)
        if value is not None and value > 0:
            self._values[bar.symbol] = value

    def units(self, context: SizingContext) -> float:
        """Return the risk-based size, or 0 while the ATR is warming up."""
        atr = self._values.get(context.symbol)
        if atr is None:
            return 0.0
        wanted = position_size(context.equity, self.risk_fraction, atr * self.atr_multiple)
        return _affordable(context, wanted)


@dataclass(frozen=True, slots=True)
class FractionalKelly:
    """Fractional Kelly of the closed-trade record, capped; a fixed fraction until it has data."""

    fraction: float = 0.5
    cap: float = 0.25
    minimum_trades: int = 20
    initial_fraction: float = 0.02
    observes_bars: bool = False

    def observe(self, bar: BarClosed) -> None:
        """Ignore bars."""

    def units(self, context: SizingContext) -> float:
        """Return Kelly-fraction * equity * leverage / price."""
        record = context.record
        if record.count < self.minimum_trades or record.wins == 0 or record.losses == 0:
            share = min(self.initial_fraction, self.cap)
        else:
            payoff = (record.gross_profit / record.wins) / (record.gross_loss / record.losses)
            share = kelly_fraction(
                record.wins / record.count, payoff, fraction=self.fraction, cap=self.cap
            )
        wanted = share * context.equity * context.leverage / context.price
        return _affordable(context, wanted)


@dataclass(frozen=True, slots=True)
class AllInWholeUnits:
    """As many whole units as the available margin buys, commission included.

    Matches backtesting.py's relative order size: ``int(margin * leverage * share //
    (price + commission(share, price) / share))``.
    """

    share: float = FULL_SHARE
    observes_bars: bool = False

    def observe(self, bar: BarClosed) -> None:
        """Ignore bars."""

    def units(self, context: SizingContext) -> float:
        """Return the whole number of units all the available margin pays for."""
        per_unit = context.price + context.costs.commission(self.share, context.price) / self.share
        budget = context.available_margin * context.leverage * self.share
        if budget <= 0 or not math.isfinite(budget):
            return 0.0
        return float(int(budget // per_unit))
