"""Alerts for refused control calls, rate limited so that an attacker cannot flood them.

A refused control call (no valid credentials, or a role too low for the action) is audited
and raises an :class:`AlertRaised` on the bus: one per caller and action a minute, and at most
``MAXIMUM_ALERTS_PER_MINUTE`` in all; the rest are counted, not sent.
"""

from __future__ import annotations

from prometheus_client import Counter

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_events.alerts import AlertRaised, Severity
from tai_gateway.ratelimit import TokenBucketLimiter
from tai_telemetry.logging import get_logger

SOURCE = "gateway"
DENIED_CODE = "control_denied"
"""A signed-in user asked for a control action their role does not allow."""
UNAUTHENTICATED_CODE = "control_unauthenticated"
"""A control action was asked for without valid credentials (none, forged, expired)."""
ALERT_PERIOD_SECONDS = 60.0
ALERTS_PER_CALLER_AND_ACTION = 1
"""Alerts per caller and action in each period."""
MAXIMUM_ALERTS_PER_MINUTE = 30
"""Alerts in all per period, whatever the callers: many addresses cannot flood either."""


class RefusalAlerts:
    """Publish an AlertRaised for a refused control call, unless the rate limits say no."""

    def __init__(
        self,
        bus: MessageBus,
        clock: Clock,
        counter: Counter,
        *,
        per_caller_and_action: int = ALERTS_PER_CALLER_AND_ACTION,
        in_all: int = MAXIMUM_ALERTS_PER_MINUTE,
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._counter = counter
        self._per_key = TokenBucketLimiter(per_caller_and_action, ALERT_PERIOD_SECONDS, clock)
        self._overall = TokenBucketLimiter(in_all, ALERT_PERIOD_SECONDS, clock)
        self._logger = get_logger("tai_gateway.alerts")

    async def refused(
        self, *, code: str, caller: str, action: str, channel: str, details: dict[str, str]
    ) -> bool:
        """Raise the alert for one refused call; return False when rate limited or unsent."""
        if not self._per_key.allow(f"{caller}\n{action}").allowed:
            self._counter.labels(code, "suppressed").inc()
            return False
        if not self._overall.allow("all").allowed:
            self._counter.labels(code, "suppressed").inc()
            return False
        what = "without valid credentials" if code == UNAUTHENTICATED_CODE else "by role"
        alert = AlertRaised(
            severity=Severity.WARNING,
            source=SOURCE,
            code=code,
            message=f"refused {action} {what} from {caller} ({channel})"[:2000],
            details={"caller": caller, "action": action, "channel": channel, **details},
            raised_at=self._clock.now(),
        )
        try:
            await self._bus.publish(alert)
        except Exception:
            # The refusal stands and is audited; a bus outage must not turn it into a 5xx.
            self._counter.labels(code, "failed").inc()
            self._logger.exception("refusal_alert_failed", code=code, action=action)
            return False
        self._counter.labels(code, "raised").inc()
        return True
