"""Everything the API and the console share, built once in the composition root."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from tai_core.clock import Clock
from tai_gateway.auth import TokenSigner
from tai_gateway.backtests import BacktestRunner
from tai_gateway.config import GatewaySettings
from tai_gateway.control import ControlService
from tai_gateway.ledger import GatewayLedger
from tai_gateway.live import LiveState
from tai_gateway.login import LoginService
from tai_gateway.operations import BrokerOperations
from tai_gateway.ratelimit import TokenBucketLimiter
from tai_gateway.risk_view import RiskLimits
from tai_gateway.sessions import SessionStore
from tai_telemetry.metrics import Telemetry


@dataclass(frozen=True)
class GatewayMetrics:
    """Gateway-specific Prometheus counters, registered in the service's own registry."""

    logins: Counter
    control_requests: Counter
    rate_limited: Counter
    refusal_alerts: Counter

    @classmethod
    def create(cls, telemetry: Telemetry) -> GatewayMetrics:
        """Register the counters in the telemetry registry."""
        return cls(
            logins=Counter(
                "tai_gateway_logins",
                "Login attempts by channel and outcome",
                ["channel", "outcome"],
                registry=telemetry.registry,
            ),
            control_requests=Counter(
                "tai_gateway_control_requests",
                "Control requests by action and outcome",
                ["action", "outcome"],
                registry=telemetry.registry,
            ),
            rate_limited=Counter(
                "tai_gateway_rate_limited",
                "API requests refused by the rate limiter",
                registry=telemetry.registry,
            ),
            refusal_alerts=Counter(
                "tai_gateway_refusal_alerts",
                "Alerts for refused control calls by code and outcome (raised, suppressed, failed)",
                ["code", "outcome"],
                registry=telemetry.registry,
            ),
        )


@dataclass(frozen=True)
class GatewayContext:
    """Shared services of the gateway's two front ends."""

    settings: GatewaySettings
    clock: Clock
    telemetry: Telemetry
    metrics: GatewayMetrics
    ledger: GatewayLedger
    live: LiveState
    login: LoginService
    tokens: TokenSigner
    sessions: SessionStore
    """Server-side sessions behind every token and console cookie (revocable)."""
    limiter: TokenBucketLimiter
    control: ControlService
    readiness: Callable[[], Coroutine[Any, Any, dict[str, bool]]]
    """Return each readiness check by name (store, bus)."""
    operations: BrokerOperations
    backtests: BacktestRunner

    def risk_limits(self) -> RiskLimits | None:
        """Return the limits and breakers risk last announced (None until it has)."""
        published = self.live.snapshot().risk_limits
        return None if published is None else RiskLimits.from_published(published)
