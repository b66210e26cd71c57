"""Closed trades from fills: FIFO lots per symbol, commissions shared pro rata.

Used by the backtester and by execution, which records each strategy's closed trades in the
ledger (one TradeLedger per strategy).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from tai_quant.metrics import Trade

QUANTITY_EPSILON = 1e-9
"""Quantities closer to zero than this are flat (as tai_core.accounting has it)."""


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A round trip: entry and exit, size (signed: negative is short) and net P&L."""

    symbol: str
    size: float
    entry_time: datetime
    exit_time: datetime
    entry_price: float
    exit_price: float
    entry_bar: int
    exit_bar: int
    commission: float
    pnl: float
    """Net of the entry and exit commissions."""
    exit_reason: str
    """Why the position closed (the backtester's ExitReason, execution's order kind)."""

    @property
    def return_pct(self) -> float:
        """Return the net P&L as a percentage of the entry notional."""
        return self.pnl / (abs(self.size) * self.entry_price) * 100.0

    def as_metrics_trade(self) -> Trade:
        """Return the tai_quant view of this trade."""
        return Trade(self.entry_time, self.exit_time, self.pnl, self.return_pct)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready dict."""
        return {
            "symbol": self.symbol,
            "side": "LONG" if self.size > 0 else "SHORT",
            "size": self.size,
            "entry_time": self.entry_time.isoformat(),
            "exit_time": self.exit_time.isoformat(),
            "entry_price": self.entry_price,
            "exit_price": self.exit_price,
            "entry_bar": self.entry_bar,
            "exit_bar": self.exit_bar,
            "commission": self.commission,
            "pnl": self.pnl,
            "return_pct": self.return_pct,
            "exit_reason": str(self.exit_reason),
        }


@dataclass(slots=True)
class _Lot:
    size: float
    price: float
    time: datetime
    bar: int
    commission_per_unit: float


@dataclass
class TradeLedger:
    """Turns signed fills into closed trades, first in first out."""

    closed: list[ClosedTrade] = field(default_factory=list)
    open_lots: dict[str, list[_Lot]] = field(default_factory=dict)
    keep_closed: bool = True
    """Keep every closed trade in ``closed`` (a backtest's report); a live ledger only needs
    the open lots."""

    def copy_open(self) -> TradeLedger:
        """Return an independent ledger with the same open lots (and no closed history)."""
        return TradeLedger(
            open_lots={
                symbol: [replace(lot) for lot in lots] for symbol, lots in self.open_lots.items()
            },
            keep_closed=self.keep_closed,
        )

    def apply(
        self,
        symbol: str,
        signed_quantity: float,
        price: float,
        commission: float,
        *,
        time: datetime,
        bar: int,
        reason: str,
    ) -> list[ClosedTrade]:
        """Apply one fill; return the trades it closed."""
        lots = self.open_lots.setdefault(symbol, [])
        commission_per_unit = commission / abs(signed_quantity)
        remaining = signed_quantity
        closed: list[ClosedTrade] = []
        while lots and abs(remaining) > QUANTITY_EPSILON and lots[0].size * remaining < 0:
            lot = lots[0]
            amount = min(abs(lot.size), abs(remaining))
            direction = 1.0 if lot.size > 0 else -1.0
            fees = amount * lot.commission_per_unit + amount * commission_per_unit
            trade = ClosedTrade(
                symbol=symbol,
                size=direction * amount,
                entry_time=lot.time,
                exit_time=time,
                entry_price=lot.price,
                exit_price=price,
                entry_bar=lot.bar,
                exit_bar=bar,
                commission=fees,
                pnl=direction * amount * (price - lot.price) - fees,
                exit_reason=reason,
            )
            closed.append(trade)
            remaining += direction * amount
            if amount >= abs(lot.size) - QUANTITY_EPSILON:
                lots.pop(0)
            else:
                lot.size -= direction * amount
        if abs(remaining) > QUANTITY_EPSILON:
            lots.append(_Lot(remaining, price, time, bar, commission_per_unit))
        if self.keep_closed:
            self.closed.extend(closed)
        return closed
