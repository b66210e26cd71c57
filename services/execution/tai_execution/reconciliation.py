"""Compare the broker's positions with the ledger's (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RECONCILIATION_TOLERANCE = 1e-6
"""Quantities closer than this agree (float noise from partial fills)."""


@dataclass(frozen=True, slots=True)
class PositionMismatch:
    """One symbol where the broker and the ledger disagree."""

    symbol: str
    broker_quantity: float
    ledger_quantity: float

    def describe(self) -> str:
        """Return a one-line explanation."""
        return (
            f"{self.symbol}: broker holds {self.broker_quantity:g}, "
            f"ledger says {self.ledger_quantity:g}"
        )


def reconcile(
    broker: Mapping[str, float],
    ledger: Mapping[str, float],
    tolerance: float = RECONCILIATION_TOLERANCE,
) -> list[PositionMismatch]:
    """Return every symbol whose signed quantities differ by more than ``tolerance``."""
    mismatches = []
    for symbol in sorted(set(broker) | set(ledger)):
        held, recorded = broker.get(symbol, 0.0), ledger.get(symbol, 0.0)
        if abs(held - recorded) > tolerance:
            mismatches.append(PositionMismatch(symbol, held, recorded))
    return mismatches
