"""What every strategy is: a pure object turning bars into order intents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tai_events.market import BarClosed
from tai_events.ml import PredictionMade
from tai_events.orders import Side, SignalDirection


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order a strategy wants, before ids, timestamps and risk."""

    symbol: str
    side: Side
    quantity: float
    reference_price: float
    confidence: float
    reason: str
    stop_loss: float | None = None
    take_profit: float | None = None
    target: SignalDirection | None = None
    """The position direction this order aims for, when the strategy holds one (e.g. a
    reversal's LONG); lets a backtest re-size the order with a sizer. None = an increment."""


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
class RegimeWeighted(Protocol):
    """A strategy whose entries scale with the weight of the symbol's current regime."""

    def set_weight(self, symbol: str, weight: float) -> None:
        """Scale the symbol's future entries by ``weight`` (0 stops new entries)."""
        ...
