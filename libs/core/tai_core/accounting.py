"""Position and account accounting: average price, realised and unrealised P&L, cash, equity.

Pure and shared, so risk's view of the book and execution's ledger can never disagree on maths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

QUANTITY_EPSILON = 1e-9
"""Quantities closer to zero than this are flat (float noise from partial fills)."""


@dataclass(frozen=True, slots=True)
class Position:
    """A signed position: positive long, negative short."""

    symbol: str
    quantity: float = 0.0
    average_price: float = 0.0
    realized_pnl: float = 0.0

    @property
    def is_flat(self) -> bool:
        """Return True when there is no position."""
        return abs(self.quantity) < QUANTITY_EPSILON

    def unrealized_pnl(self, mark_price: float) -> float:
        """Return the open P&L at a mark price."""
        return 0.0 if self.is_flat else (mark_price - self.average_price) * self.quantity

    def apply_fill(self, signed_quantity: float, price: float) -> tuple[Position, float]:
        """Return the position after a fill and the P&L the fill realised.

        Adding to a position moves the average price; reducing realises P&L at the old
        average; crossing through zero realises the closed part and opens the rest at price.
        """
        if not math.isfinite(signed_quantity) or not math.isfinite(price) or price <= 0:
            raise ValueError("fill quantity and price must be finite, price positive")
        current = self.quantity
        new_quantity = current + signed_quantity
        if self.is_flat or current * signed_quantity > 0:
            total = abs(current) + abs(signed_quantity)
            average = (abs(current) * self.average_price + abs(signed_quantity) * price) / total
            return replace(self, quantity=new_quantity, average_price=average), 0.0
        closed = min(abs(current), abs(signed_quantity))
        realized = closed * (price - self.average_price) * (1 if current > 0 else -1)
        if abs(new_quantity) < QUANTITY_EPSILON:
            position = replace(self, quantity=0.0, average_price=0.0)
        elif new_quantity * current > 0:
            position = replace(self, quantity=new_quantity)
        else:
            position = replace(self, quantity=new_quantity, average_price=price)
        return replace(position, realized_pnl=self.realized_pnl + realized), realized


@dataclass(frozen=True, slots=True)
class Account:
    """Cash and positions of one account; equity marks positions to the last prices."""

    cash: float
    positions: dict[str, Position]

    @classmethod
    def opened_with(cls, cash: float) -> Account:
        """Return an empty account holding only cash."""
        return cls(cash=cash, positions={})

    def position(self, symbol: str) -> Position:
        """Return the position in a symbol (flat when none)."""
        return self.positions.get(symbol, Position(symbol))

    def apply_fill(
        self, symbol: str, signed_quantity: float, price: float, commission: float
    ) -> tuple[Account, Position, float]:
        """Return the account after a fill, the new position and the realised P&L."""
        position, realized = self.position(symbol).apply_fill(signed_quantity, price)
        cash = self.cash - signed_quantity * price - commission
        positions = {**self.positions, symbol: position}
        return Account(cash=cash, positions=positions), position, realized

    def equity(self, marks: dict[str, float]) -> float:
        """Return cash plus the market value of every position at the given marks."""
        value = self.cash
        for symbol, position in self.positions.items():
            if not position.is_flat:
                value += position.quantity * marks.get(symbol, position.average_price)
        return value

    def gross_exposure(self, marks: dict[str, float]) -> float:
        """Return the sum of absolute position notionals at the given marks."""
        return math.fsum(
            abs(position.quantity) * marks.get(symbol, position.average_price)
            for symbol, position in self.positions.items()
        )
