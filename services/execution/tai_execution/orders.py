"""The order state machine: which transitions are legal, and the event each one publishes.

NEW -> SUBMITTED -> PARTIALLY_FILLED -> FILLED, or CANCELLED / REJECTED / EXPIRED.
Pure: the handlers record every transition (ledger row + event) in one outbox transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from tai_core.accounting import QUANTITY_EPSILON
from tai_events.orders import OrderState, OrderStatusChanged

ALLOWED_TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.NEW: frozenset(
        {OrderState.SUBMITTED, OrderState.REJECTED, OrderState.CANCELLED, OrderState.EXPIRED}
    ),
    OrderState.SUBMITTED: frozenset(
        {
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCELLED,
            OrderState.REJECTED,
            OrderState.EXPIRED,
        }
    ),
    # A partially filled order keeps filling; it can no longer be rejected (part of it traded).
    OrderState.PARTIALLY_FILLED: frozenset(
        {
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCELLED,
            OrderState.EXPIRED,
        }
    ),
    OrderState.FILLED: frozenset(),
    OrderState.CANCELLED: frozenset(),
    OrderState.REJECTED: frozenset(),
    OrderState.EXPIRED: frozenset(),
}


class IllegalTransitionError(ValueError):
    """An order was asked to move along a transition the state machine forbids."""

    def __init__(self, order_id: str, current: OrderState, wanted: OrderState) -> None:
        super().__init__(f"order {order_id}: illegal transition {current.value} -> {wanted.value}")
        self.order_id = order_id
        self.current = current
        self.wanted = wanted


def is_allowed(current: OrderState, wanted: OrderState) -> bool:
    """Return True when ``current -> wanted`` is a legal transition."""
    return wanted in ALLOWED_TRANSITIONS[current]


@dataclass(frozen=True, slots=True)
class OrderTransition:
    """One legal transition: the new order status and the event announcing it."""

    status: OrderStatus
    event: OrderStatusChanged


@dataclass(frozen=True, slots=True)
class OrderStatus:
    """Where an order stands: its state and how much of it has traded, at what average."""

    order_id: str
    symbol: str
    quantity: float
    state: OrderState = OrderState.NEW
    filled_quantity: float = 0.0
    average_fill_price: float | None = None

    @property
    def remaining_quantity(self) -> float:
        """Return the quantity still to fill (never negative)."""
        return max(0.0, self.quantity - self.filled_quantity)

    def move(self, state: OrderState, reason: str, at: datetime) -> OrderTransition:
        """Return the transition to ``state``; raise IllegalTransitionError if forbidden."""
        if not is_allowed(self.state, state):
            raise IllegalTransitionError(self.order_id, self.state, state)
        status = replace(self, state=state)
        return OrderTransition(status, self._event(status, reason, at))

    def fill(self, quantity: float, price: float, at: datetime) -> OrderTransition:
        """Return the transition a fill of ``quantity`` at ``price`` causes.

        The order becomes FILLED once the remaining quantity is (numerically) zero, otherwise
        PARTIALLY_FILLED; the average fill price is volume weighted.
        """
        if quantity <= 0 or price <= 0:
            raise ValueError("a fill needs a positive quantity and price")
        if quantity > self.remaining_quantity + QUANTITY_EPSILON:
            raise ValueError(
                f"order {self.order_id}: fill of {quantity} exceeds the remaining "
                f"{self.remaining_quantity}"
            )
        filled = min(self.quantity, self.filled_quantity + quantity)
        average = (self.filled_quantity * (self.average_fill_price or 0.0) + quantity * price) / (
            self.filled_quantity + quantity
        )
        done = self.quantity - filled < QUANTITY_EPSILON
        state = OrderState.FILLED if done else OrderState.PARTIALLY_FILLED
        if not is_allowed(self.state, state):
            raise IllegalTransitionError(self.order_id, self.state, state)
        status = replace(
            self,
            state=state,
            filled_quantity=self.quantity if done else filled,
            average_fill_price=average,
        )
        reason = "filled" if done else f"partially filled {status.filled_quantity}/{self.quantity}"
        return OrderTransition(status, self._event(status, reason, at))

    def _event(self, status: OrderStatus, reason: str, at: datetime) -> OrderStatusChanged:
        return OrderStatusChanged(
            order_id=status.order_id,
            symbol=status.symbol,
            state=status.state,
            previous_state=self.state,
            filled_quantity=status.filled_quantity,
            remaining_quantity=status.remaining_quantity,
            reason=reason[:500],
            changed_at=at,
        )
