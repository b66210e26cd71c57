"""P&L maths: average price, realised + unrealised = cash-flow P&L, FX conversion (properties)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_core.accounting import Position
from tai_execution.portfolio import (
    ConversionUnavailableError,
    CurrencyConverter,
    RealizedLedger,
    quote_currency,
    value_position,
)

prices = st.floats(min_value=0.01, max_value=10_000, allow_nan=False, allow_infinity=False)
quantities = st.floats(min_value=-1_000, max_value=1_000, allow_nan=False).filter(
    lambda quantity: abs(quantity) >= 0.01
)
fills = st.lists(st.tuples(quantities, prices), min_size=1, max_size=30)


@given(fills, prices)
def test_realised_plus_unrealised_equals_the_cash_flow_pnl(
    trades: list[tuple[float, float]], mark: float
) -> None:
    # Arrange / Act
    position = Position("EURUSD")
    for quantity, price in trades:
        position, _realized = position.apply_fill(quantity, price)
    # Assert: P&L = what the position is worth at the mark minus the net cash paid for it
    cash_flow = -math.fsum(quantity * price for quantity, price in trades)
    worth = position.quantity * mark
    total = position.realized_pnl + position.unrealized_pnl(mark)
    scale = math.fsum(abs(quantity) * price for quantity, price in trades) + abs(worth)
    assert total == pytest.approx(cash_flow + worth, abs=1e-9 * scale + 1e-6)


@given(st.lists(st.tuples(st.floats(0.01, 1_000), prices), min_size=1, max_size=20))
def test_adding_in_one_direction_averages_the_price_by_quantity(
    trades: list[tuple[float, float]],
) -> None:
    position = Position("EURUSD")
    for quantity, price in trades:
        position, realized = position.apply_fill(quantity, price)
        assert realized == 0.0
    expected = math.fsum(q * p for q, p in trades) / math.fsum(q for q, _ in trades)
    assert position.average_price == pytest.approx(expected, rel=1e-9)
    assert min(p for _, p in trades) * (1 - 1e-12) <= position.average_price


@given(st.floats(0.01, 1_000), prices, prices)
def test_closing_a_long_realises_quantity_times_the_price_move(
    quantity: float, entry: float, exit_price: float
) -> None:
    position, _ = Position("EURUSD").apply_fill(quantity, entry)
    closed, realized = position.apply_fill(-quantity, exit_price)
    # rounding of quantity x price, however small the move: a few ulps of the notional
    notional = quantity * max(entry, exit_price)
    assert realized == pytest.approx(
        quantity * (exit_price - entry), rel=1e-9, abs=1e-12 * notional
    )
    assert closed.is_flat
    assert closed.unrealized_pnl(exit_price) == 0.0


@given(st.floats(0.5, 2.0), st.floats(-1e6, 1e6))
def test_direct_and_inverse_pairs_convert_the_same_amount(rate: float, amount: float) -> None:
    direct = CurrencyConverter("EUR")
    direct.observe("USDEUR", 1 / rate)
    inverse = CurrencyConverter("EUR")
    inverse.observe("EURUSD", rate)
    assert direct.to_account("GBPUSD", amount) == pytest.approx(
        inverse.to_account("GBPUSD", amount), rel=1e-9, abs=1e-9
    )


def test_pnl_in_the_account_currency_needs_no_rate() -> None:
    converter = CurrencyConverter("USD")
    assert converter.to_account("EURUSD", 125.0) == 125.0


def test_jpy_quoted_pnl_converts_to_usd_at_the_latest_usdjpy_close() -> None:
    # Arrange: long 10,000 USDJPY from 150.00, marked at 151.00 -> 10,000 JPY of profit
    converter = CurrencyConverter("USD")
    converter.observe("USDJPY", 149.0)
    converter.observe("USDJPY", 151.0)
    position, _ = Position("USDJPY").apply_fill(10_000, 150.0)
    # Act
    valuation = value_position(position, 151.0, converter)
    # Assert
    assert valuation.unrealized_pnl == pytest.approx(10_000.0)
    assert valuation.unrealized_pnl_account == pytest.approx(10_000.0 / 151.0)


def test_realised_pnl_converts_at_the_rate_of_its_fill() -> None:
    converter = CurrencyConverter("EUR")
    ledger = RealizedLedger(converter)
    converter.observe("EURUSD", 1.25)
    ledger.add("GBPUSD", 100.0)  # 100 USD = 80 EUR at 1.25
    converter.observe("EURUSD", 1.0)
    ledger.add("GBPUSD", 100.0)  # 100 USD = 100 EUR at 1.00
    assert ledger.total() == pytest.approx(180.0)


def test_missing_conversion_rate_is_an_error_not_a_guess() -> None:
    converter = CurrencyConverter("EUR")
    with pytest.raises(ConversionUnavailableError):
        converter.to_account("USDJPY", 1.0)


def test_non_fx_symbols_use_their_configured_currency() -> None:
    assert quote_currency("GOOG", {"GOOG": "USD"}, "EUR") == "USD"
    assert quote_currency("SPX500", {}, "EUR") == "EUR"
    assert quote_currency("EURGBP", {}, "USD") == "GBP"
