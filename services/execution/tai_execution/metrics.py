"""Execution metrics (names the Grafana trading dashboard reads)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(frozen=True, slots=True)
class ExecutionMetrics:
    """Open positions, order transitions and reconciliation outcomes of the execution service."""

    open_positions: Gauge
    orders: Counter
    reconciliations: Counter
    unrealized_pnl: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ExecutionMetrics:
        """Register the metrics on a service's own registry."""
        return cls(
            open_positions=Gauge(
                "tai_open_positions", "Symbols with a non-flat position", registry=registry
            ),
            orders=Counter(
                "tai_orders_total",
                "Order state transitions recorded, by the state entered",
                ["state"],
                registry=registry,
            ),
            reconciliations=Counter(
                "tai_execution_reconciliations_total",
                "Broker-vs-ledger reconciliations, by outcome",
                ["outcome"],
                registry=registry,
            ),
            unrealized_pnl=Gauge(
                "tai_execution_unrealized_pnl",
                "Open P&L per symbol in the account currency, at the latest close",
                ["symbol"],
                registry=registry,
            ),
        )
