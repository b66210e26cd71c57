"""Risk's Prometheus gauges (registered on the service's own registry)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from tai_events.risk import TradingState
from tai_risk.state import SEVERITY


@dataclass(frozen=True, slots=True)
class RiskMetrics:
    """tai_equity, tai_drawdown_pct, tai_risk_trading_state and decision counts."""

    equity: Gauge
    gross_exposure: Gauge
    drawdown_pct: Gauge
    trading_state: Gauge
    decisions: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RiskMetrics:
        """Register the risk metrics on ``registry``."""
        return cls(
            equity=Gauge("tai_equity", "Account equity at the last prices", registry=registry),
            gross_exposure=Gauge(
                "tai_gross_exposure",
                "Sum of absolute position notionals at the last prices",
                registry=registry,
            ),
            drawdown_pct=Gauge(
                "tai_drawdown_pct", "Drawdown from the equity peak, percent", registry=registry
            ),
            trading_state=Gauge(
                "tai_risk_trading_state",
                "Trading state: 0 ACTIVE, 1 REDUCING, 2 HALTED",
                registry=registry,
            ),
            decisions=Counter(
                "tai_risk_decisions_total",
                "Risk decisions by outcome and the rule that rejected",
                ["outcome", "rule"],
                registry=registry,
            ),
        )

    def observe(
        self, equity: float, gross_exposure: float, drawdown_pct: float, state: TradingState
    ) -> None:
        """Set the gauges."""
        self.equity.set(equity)
        self.gross_exposure.set(gross_exposure)
        self.drawdown_pct.set(drawdown_pct)
        self.trading_state.set(SEVERITY[state])
