"""Pure notification logic: what to say about an event, where to send it, and when not to."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tai_events.alerts import AlertRaised, Severity
from tai_events.ml import ModelPromoted
from tai_events.orders import FillExecuted
from tai_events.research import ResearchRunFinished, ResearchRunStatus
from tai_events.risk import RiskStateChanged, TradingState

MAXIMUM_TEXT_LENGTH = 4000
"""Telegram refuses messages over 4096 characters; keep a margin for the title."""

RISK_STATE_SEVERITY = {
    TradingState.HALTED: Severity.CRITICAL,
    TradingState.REDUCING: Severity.WARNING,
    TradingState.ACTIVE: Severity.INFO,
}


class Channel(StrEnum):
    """Where a notification can go."""

    TELEGRAM = "telegram"
    EMAIL = "email"


OPTIMIZER_PREFIX = "optimizer:"
"""``promoted_by`` of the optimizer's promotions (notified with the run that decided them)."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One human-readable notification; ``key`` identifies duplicates."""

    severity: Severity
    title: str
    body: str
    key: str
    channels: frozenset[Channel] | None = None
    """Where it goes regardless of its severity's routing (promotions, failed runs)."""

    @property
    def text(self) -> str:
        """Return the title and body as one message, cut to the channels' size limit."""
        text = f"[{self.severity.value.upper()}] {self.title}\n{self.body}"
        return text[:MAXIMUM_TEXT_LENGTH]


def from_alert(alert: AlertRaised) -> Notification:
    """Describe an alert; the same code and message from the same source is a duplicate."""
    details = "\n".join(f"{name}: {value}" for name, value in sorted(alert.details.items()))
    body = alert.message if not details else f"{alert.message}\n{details}"
    return Notification(
        severity=alert.severity,
        title=f"{alert.source}: {alert.code}",
        body=f"{body}\nat {alert.raised_at.isoformat()}",
        key=f"alert:{alert.source}:{alert.code}:{alert.message}",
    )


def from_fill(fill: FillExecuted, severity: Severity) -> Notification:
    """Describe a fill; each fill id is notified once."""
    return Notification(
        severity=severity,
        title=f"Fill {fill.side.value} {fill.quantity:g} {fill.symbol} @ {fill.price:g}",
        body=(
            f"strategy {fill.strategy}, order {fill.order_id}, broker {fill.broker}, "
            f"commission {fill.commission:g}\nat {fill.filled_at.isoformat()}"
        ),
        key=f"fill:{fill.fill_id}",
    )


def from_risk_state(change: RiskStateChanged) -> Notification:
    """Describe a trading-state change: HALTED is critical, REDUCING a warning."""
    previous = change.previous_state.value if change.previous_state else "none"
    return Notification(
        severity=RISK_STATE_SEVERITY[change.state],
        title=f"Trading state {previous} -> {change.state.value}",
        body=(
            f"{change.reason} (by {change.changed_by})\nequity {change.equity:.2f}, "
            f"drawdown {change.drawdown_pct:.2f}%\nat {change.changed_at.isoformat()}"
        ),
        key=f"risk:{change.state.value}:{change.changed_at.isoformat()}",
    )


def from_research_run(
    run: ResearchRunFinished, lifecycle_channels: frozenset[Channel]
) -> Notification:
    """Describe a finished optimizer run; promotions and failures go to ``lifecycle_channels``.

    Other outcomes (a shadow started, a candidate rejected, no drift) are INFO: routed like
    any INFO notification (by default nowhere, the console shows them).
    """
    failed = run.status is ResearchRunStatus.FAILED
    promoted = run.outcome == "promoted"
    outcome = "failed" if failed else (run.outcome or "finished")
    details = "\n".join(f"{name}: {value}" for name, value in sorted(run.summary.items()) if value)
    text = run.error if failed and run.error else run.reason
    body = "\n".join(part for part in (text, details) if part)
    return Notification(
        severity=Severity.WARNING if failed else Severity.INFO,
        title=f"optimizer {run.kind} {run.subject} {run.symbol}: {outcome}",
        body=f"{body}\nrun {run.run_id} at {run.finished_at.isoformat()}",
        key=f"research:{run.run_id}:{outcome}",
        channels=lifecycle_channels if failed or promoted else None,
    )


def from_model_promotion(
    promotion: ModelPromoted, lifecycle_channels: frozenset[Channel]
) -> Notification | None:
    """Describe a promotion or rollback made by a person (the optimizer's come with its run)."""
    if promotion.promoted_by.startswith(OPTIMIZER_PREFIX):
        return None
    previous = promotion.previous_model_id or "none"
    return Notification(
        severity=Severity.INFO,
        title=f"model {promotion.model_id} promoted for {promotion.symbol} {promotion.timeframe}",
        body=(
            f"by {promotion.promoted_by}, replacing {previous}\n"
            f"at {promotion.promoted_at.isoformat()}"
        ),
        key=f"promotion:{promotion.model_id}:{promotion.promoted_at.isoformat()}",
        channels=lifecycle_channels,
    )


@dataclass(frozen=True, slots=True)
class SeverityRouting:
    """Which channels each severity goes to."""

    routes: Mapping[Severity, frozenset[Channel]]

    @classmethod
    def from_lists(cls, telegram: Iterable[Severity], email: Iterable[Severity]) -> SeverityRouting:
        """Build the routing from the severities each channel takes."""
        telegram_set, email_set = set(telegram), set(email)
        return cls(
            {
                severity: frozenset(
                    channel
                    for channel, accepted in (
                        (Channel.TELEGRAM, telegram_set),
                        (Channel.EMAIL, email_set),
                    )
                    if severity in accepted
                )
                for severity in Severity
            }
        )

    def channels_for(self, severity: Severity) -> frozenset[Channel]:
        """Return the channels of a severity (none when unrouted)."""
        return self.routes.get(severity, frozenset())


class Deduplicator:
    """Remember what each channel delivered so the same notification is not sent twice."""

    def __init__(self, window: timedelta) -> None:
        self._window = window
        self._delivered: dict[tuple[Channel, str], datetime] = {}
        self._lock = threading.Lock()

    def is_duplicate(self, channel: Channel, key: str, now: datetime) -> bool:
        """Return True when ``key`` went to ``channel`` within the window."""
        with self._lock:
            delivered = self._delivered.get((channel, key))
            return delivered is not None and now - delivered < self._window

    def record(self, channel: Channel, key: str, now: datetime) -> None:
        """Remember a delivery (and forget deliveries older than the window)."""
        with self._lock:
            expired = [item for item, at in self._delivered.items() if now - at >= self._window]
            for item in expired:
                del self._delivered[item]
            self._delivered[(channel, key)] = now


class Throttle:
    """Allow at most ``limit`` messages per channel in any sliding ``period``."""

    def __init__(self, limit: int, period: timedelta) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._period = period
        self._sent: dict[Channel, deque[datetime]] = {}
        self._lock = threading.Lock()

    def allow(self, channel: Channel, now: datetime) -> bool:
        """Take a slot for ``channel`` when one is free."""
        with self._lock:
            sent = self._sent.setdefault(channel, deque())
            while sent and now - sent[0] >= self._period:
                sent.popleft()
            if len(sent) >= self._limit:
                return False
            sent.append(now)
            return True


class Decision(StrEnum):
    """What the policy says about one notification on one channel."""

    SEND = "send"
    DUPLICATE = "duplicate"
    THROTTLED = "throttled"


class NotificationPolicy:
    """Route by severity, drop duplicates, throttle everything below CRITICAL."""

    def __init__(self, routing: SeverityRouting, dedup: Deduplicator, throttle: Throttle) -> None:
        self.routing = routing
        self._dedup = dedup
        self._throttle = throttle

    def decide(self, notification: Notification, now: datetime) -> dict[Channel, Decision]:
        """Return the decision for each channel the severity routes to."""
        decisions: dict[Channel, Decision] = {}
        channels = notification.channels
        if channels is None:
            channels = self.routing.channels_for(notification.severity)
        for channel in sorted(channels):
            if self._dedup.is_duplicate(channel, notification.key, now):
                decisions[channel] = Decision.DUPLICATE
            elif notification.severity is Severity.CRITICAL or self._throttle.allow(channel, now):
                decisions[channel] = Decision.SEND
            else:
                decisions[channel] = Decision.THROTTLED
        return decisions

    def delivered(self, channel: Channel, notification: Notification, now: datetime) -> None:
        """Record a successful delivery for de-duplication."""
        self._dedup.record(channel, notification.key, now)
