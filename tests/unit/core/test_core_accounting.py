"""Position and account maths."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_core.accounting import Account, Position

prices = st.floats(min_value=0.01, max_value=10_000, allow_nan=False, allow_infinity=False)
quantities = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False).filter(
    lambda value: abs(value) > 1e-3
)


def test_adding_to_a_long_averages_the_price() -> None:
    position, realized = Position("X").apply_fill(100, 10.0)
    position, realized = position.apply_fill(100, 20.0)
    assert position.quantity == 200
    assert position.average_price == pytest.approx(15.0)
    assert realized == 0.0


def test_reducing_a_long_realises_pnl_at_the_average() -> None:
    position, _ = Position("X").apply_fill(100, 10.0)
    position, realized = position.apply_fill(-40, 12.0)
    assert realized == pytest.approx(80.0)
    assert position.quantity == 60
    assert position.average_price == pytest.approx(10.0)


def test_reversing_realises_the_closed_part_and_opens_the_rest_at_the_fill_price() -> None:
    position, _ = Position("X").apply_fill(100, 10.0)
    position, realized = position.apply_fill(-300, 9.0)
    assert realized == pytest.approx(-100.0)
    assert position.quantity == -200
    assert position.average_price == pytest.approx(9.0)


def test_short_profits_when_price_falls() -> None:
    position, _ = Position("X").apply_fill(-10, 50.0)
    position, realized = position.apply_fill(10, 40.0)
    assert realized == pytest.approx(100.0)
    assert position.is_flat


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan, math.inf])
def test_invalid_fill_price_is_refused(price: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        Position("X").apply_fill(1, price)


@given(
    fills=st.lists(st.tuples(quantities, prices), min_size=1, max_size=20),
    exit_price=prices,
)
def test_equity_change_equals_realised_plus_unrealised_minus_commission(
    fills: list[tuple[float, float]], exit_price: float
) -> None:
    # Arrange
    account = Account.opened_with(1_000_000.0)
    commission_total = 0.0
    # Act
    for quantity, price in fills:
        commission = abs(quantity) * price * 0.0001
        commission_total += commission
        account, _position, _realized = account.apply_fill("X", quantity, price, commission)
    position = account.position("X")
    equity = account.equity({"X": exit_price})
    # Assert: cash accounting and P&L accounting agree
    expected = (
        1_000_000.0 + position.realized_pnl + position.unrealized_pnl(exit_price) - commission_total
    )
    assert equity == pytest.approx(expected, rel=1e-9, abs=1e-4)
