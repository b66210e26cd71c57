"""The order state machine: every legal transition, every illegal one refused, fill arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tai_events.orders import OrderState
from tai_execution.orders import ALLOWED_TRANSITIONS, IllegalTransitionError, OrderStatus

AT = datetime(2024, 1, 2, 10, tzinfo=UTC)
LEGAL = [
    (current, wanted) for current, targets in ALLOWED_TRANSITIONS.items() for wanted in targets
]
ILLEGAL = [
    (current, wanted)
    for current in OrderState
    for wanted in OrderState
    if wanted not in ALLOWED_TRANSITIONS[current]
]


def test_the_documented_lifecycle_is_exactly_the_allowed_set() -> None:
    assert ALLOWED_TRANSITIONS[OrderState.NEW] == {
        OrderState.SUBMITTED,
        OrderState.REJECTED,
        OrderState.CANCELLED,
        OrderState.EXPIRED,
    }
    assert ALLOWED_TRANSITIONS[OrderState.SUBMITTED] == {
        OrderState.PARTIALLY_FILLED,
        OrderState.FILLED,
        OrderState.CANCELLED,
        OrderState.REJECTED,
        OrderState.EXPIRED,
    }
    assert ALLOWED_TRANSITIONS[OrderState.PARTIALLY_FILLED] == {
        OrderState.PARTIALLY_FILLED,
        OrderState.FILLED,
        OrderState.CANCELLED,
        OrderState.EXPIRED,
    }
    for terminal in (
        OrderState.FILLED,
        OrderState.CANCELLED,
        OrderState.REJECTED,
        OrderState.EXPIRED,
    ):
        assert ALLOWED_TRANSITIONS[terminal] == frozenset()


@pytest.mark.parametrize(("current", "wanted"), LEGAL)
def test_legal_transition_produces_its_event(current: OrderState, wanted: OrderState) -> None:
    # Arrange
    status = OrderStatus("ord-1", "EURUSD", 10.0, state=current)
    # Act
    transition = status.move(wanted, "because", AT)
    # Assert
    assert transition.status.state is wanted
    assert transition.event.state is wanted
    assert transition.event.previous_state is current
    assert transition.event.reason == "because"
    assert transition.event.changed_at == AT


@pytest.mark.parametrize(("current", "wanted"), ILLEGAL)
def test_illegal_transition_is_refused(current: OrderState, wanted: OrderState) -> None:
    status = OrderStatus("ord-1", "EURUSD", 10.0, state=current)
    with pytest.raises(IllegalTransitionError) as raised:
        status.move(wanted, "no", AT)
    assert (raised.value.current, raised.value.wanted) == (current, wanted)


def test_partial_fills_then_the_last_one_fills_the_order_at_the_weighted_average() -> None:
    # Arrange
    status = OrderStatus("ord-1", "EURUSD", 10.0, state=OrderState.SUBMITTED)
    # Act
    first = status.fill(4.0, 1.10, AT)
    second = first.status.fill(6.0, 1.20, AT)
    # Assert
    assert first.status.state is OrderState.PARTIALLY_FILLED
    assert first.event.remaining_quantity == pytest.approx(6.0)
    assert second.status.state is OrderState.FILLED
    assert second.event.previous_state is OrderState.PARTIALLY_FILLED
    assert second.event.remaining_quantity == 0.0
    assert second.status.average_fill_price == pytest.approx((4 * 1.10 + 6 * 1.20) / 10)


def test_fill_larger_than_the_remainder_is_refused() -> None:
    status = OrderStatus("ord-1", "EURUSD", 10.0, state=OrderState.SUBMITTED)
    with pytest.raises(ValueError, match="exceeds the remaining"):
        status.fill(11.0, 1.1, AT)


def test_a_new_order_cannot_fill_before_it_is_submitted() -> None:
    with pytest.raises(IllegalTransitionError):
        OrderStatus("ord-1", "EURUSD", 10.0).fill(10.0, 1.1, AT)


def test_a_partially_filled_order_can_no_longer_be_rejected() -> None:
    status = OrderStatus("ord-1", "EURUSD", 10.0, state=OrderState.PARTIALLY_FILLED)
    with pytest.raises(IllegalTransitionError):
        status.move(OrderState.REJECTED, "too late", AT)
