"""What every strategy is: a pure object turning bars into order intents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from tai_events.market import BarClosed, Timeframe
from tai_events.ml import PredictionMade
from tai_events.orders import Side, SignalDirection, TradingStyle


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order a strategy wants, before ids, timestamps and risk.

    An entry leaves ``quantity`` empty and states its risk budget (risk sizes it from the
    account); an exit is ``reduce_only`` and names the entry it closes (``entry_signal_time``):
    the strategy service asks for exactly what that entry left the strategy holding.
    """

    symbol: str
    side: Side
    quantity: float | None
    reference_price: float
    confidence: float
    reason: str
    stop_loss: float | None = None
    take_profit: float | None = None
    target: SignalDirection | None = None
    """The position direction this order aims for, when the strategy holds one (e.g. a
    reversal's LONG); lets a backtest re-size the order with a sizer. None = an increment."""
    risk_budget_pct: float | None = None
    """Share of equity the trade may lose at its stop, in % (entries that risk sizes)."""
    style: TradingStyle | None = None
    win_probability: float | None = None
    reduce_only: bool = False
    entry_signal_time: datetime | None = None
    """For an exit: the signal time of the entry whose position it closes."""


class Strategy(Protocol):
    """Bars in, order intents out; synchronous and free of I/O."""

    name: str

    def on_bar(self, bar: BarClosed) -> list[OrderIntent]:
        """Consume one closed bar and return the orders it calls for."""
        ...

    def warm_up(self, bar: BarClosed) -> None:
        """Consume a historical bar without trading (state rebuild after a restart)."""
        ...


@runtime_checkable
class PredictionConsumer(Protocol):
    """A strategy that also trades on model predictions."""

    def on_prediction(self, prediction: PredictionMade) -> list[OrderIntent]:
        """Consume one prediction and return the orders it calls for."""
        ...


@runtime_checkable
class MultiTimeframe(Protocol):
    """A strategy that also reads bars of higher timeframes the system builds.

    Each higher bar reaches it right after the trading-timeframe bar that completed it, in the
    service (one queue carries both, in publish order) and in the backtester alike.
    """

    higher_timeframes: tuple[Timeframe, ...]

    def on_higher_bar(self, bar: BarClosed) -> None:
        """Consume a closed bar of one of ``higher_timeframes`` (no orders: it informs)."""
        ...


@runtime_checkable
class RegimeWeighted(Protocol):
    """A strategy whose entries scale with the weight of the symbol's current regime."""

    def set_weight(self, symbol: str, weight: float) -> None:
        """Scale the symbol's future entries by ``weight`` (0 stops new entries)."""
        ...
