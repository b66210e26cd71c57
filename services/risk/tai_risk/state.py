"""Risk's view of the book: trading state and the projected portfolio."""

from __future__ import annotations

from dataclasses import dataclass, field

from tai_events.orders import Side
from tai_events.risk import TradingState


@dataclass
class PortfolioState:
    """Positions risk has approved (projected: fills plus approved, unfilled orders).

    Risk decides on projected positions so a decision never depends on whether the previous
    approval's fill has arrived yet: the same request stream gives the same decisions.
    """

    equity: float
    projected_positions: dict[str, float] = field(default_factory=dict)
    last_prices: dict[str, float] = field(default_factory=dict)
    decided_order_ids: set[str] = field(default_factory=set)

    def projected_quantity(self, symbol: str) -> float:
        """Return the signed projected position in a symbol."""
        return self.projected_positions.get(symbol, 0.0)

    def after(self, symbol: str, side: Side, quantity: float) -> float:
        """Return the projected position if an order were approved."""
        return self.projected_quantity(symbol) + side.sign * quantity

    def record_approval(self, symbol: str, side: Side, quantity: float) -> None:
        """Add an approved order to the projected positions."""
        self.projected_positions[symbol] = self.after(symbol, side, quantity)

    def open_position_count(self) -> int:
        """Return how many symbols have a non-zero projected position."""
        return sum(1 for quantity in self.projected_positions.values() if abs(quantity) > 1e-9)


@dataclass
class TradingStateMachine:
    """ACTIVE / REDUCING / HALTED and the reason for the current state."""

    state: TradingState = TradingState.ACTIVE
    reason: str = "initial state"

    def transition(self, target: TradingState, reason: str) -> TradingState | None:
        """Move to a state; return the previous state, or None when nothing changed."""
        if target is self.state:
            return None
        previous = self.state
        self.state = target
        self.reason = reason
        return previous
