"""Position valuation in the account currency: average price, realised and unrealised P&L.

A position's P&L is earned in its instrument's quote currency (EURUSD: USD). It is converted to
the account currency at the latest close of a conversion pair the service has seen: for quote
currency Q and account currency A, ``QA`` multiplies, ``AQ`` divides, and Q == A needs no rate.
Realised P&L converts at the rate known when the fill happened, unrealised P&L at the latest
rate. Six-letter symbols of three-letter codes are FX pairs (quote = last three letters); any
other symbol is quoted in the currency configured for it, else in the account currency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from tai_core.accounting import Position


class ConversionUnavailableError(LookupError):
    """No bar of a conversion pair has been seen yet, so P&L cannot be converted."""


def quote_currency(symbol: str, instrument_currencies: Mapping[str, str], default: str) -> str:
    """Return the currency a symbol's prices are quoted in."""
    if symbol in instrument_currencies:
        return instrument_currencies[symbol]
    if len(symbol) == 6 and symbol.isalpha() and symbol.isupper():
        return symbol[3:]
    return default


@dataclass
class CurrencyConverter:
    """Converts quote-currency amounts to the account currency from the latest pair closes."""

    account_currency: str
    instrument_currencies: Mapping[str, str] = field(default_factory=dict)
    _rates: dict[str, float] = field(default_factory=dict)

    def observe(self, symbol: str, close: float) -> None:
        """Remember a symbol's latest close (any FX pair may serve as a conversion rate)."""
        if close > 0 and math.isfinite(close):
            self._rates[symbol] = close

    def rate(self, currency: str) -> float:
        """Return how many account-currency units one unit of ``currency`` is worth."""
        if currency == self.account_currency:
            return 1.0
        direct = self._rates.get(f"{currency}{self.account_currency}")
        if direct is not None:
            return direct
        inverse = self._rates.get(f"{self.account_currency}{currency}")
        if inverse is not None:
            return 1.0 / inverse
        raise ConversionUnavailableError(
            f"no {currency}{self.account_currency} or {self.account_currency}{currency} "
            "price seen yet to convert P&L to the account currency"
        )

    def quote_currency(self, symbol: str) -> str:
        """Return the currency a symbol is quoted in."""
        return quote_currency(symbol, self.instrument_currencies, self.account_currency)

    def to_account(self, symbol: str, amount: float) -> float:
        """Convert an amount in the symbol's quote currency to the account currency."""
        return amount * self.rate(self.quote_currency(symbol))


@dataclass(frozen=True, slots=True)
class PositionValuation:
    """A position valued at a mark, in its quote currency and in the account currency."""

    symbol: str
    quantity: float
    average_price: float
    mark_price: float
    realized_pnl: float
    """Quote currency, as ``tai_core.accounting.Position`` keeps it."""
    unrealized_pnl: float
    """Quote currency."""
    unrealized_pnl_account: float
    """Account currency, at the latest conversion rate."""


def value_position(
    position: Position, mark_price: float, converter: CurrencyConverter
) -> PositionValuation:
    """Return the position's valuation at ``mark_price``."""
    unrealized = position.unrealized_pnl(mark_price)
    return PositionValuation(
        symbol=position.symbol,
        quantity=position.quantity,
        average_price=position.average_price,
        mark_price=mark_price,
        realized_pnl=position.realized_pnl,
        unrealized_pnl=unrealized,
        unrealized_pnl_account=converter.to_account(position.symbol, unrealized),
    )


@dataclass
class RealizedLedger:
    """Realised P&L per symbol in the account currency, converted when each fill happened."""

    converter: CurrencyConverter
    by_symbol: dict[str, float] = field(default_factory=dict)

    def add(self, symbol: str, realized_in_quote: float) -> float:
        """Convert and accumulate a fill's realised P&L; return it in the account currency."""
        if realized_in_quote == 0.0:
            return 0.0
        converted = self.converter.to_account(symbol, realized_in_quote)
        self.by_symbol[symbol] = self.by_symbol.get(symbol, 0.0) + converted
        return converted

    def total(self) -> float:
        """Return the realised P&L of every symbol in the account currency."""
        return math.fsum(self.by_symbol.values())
