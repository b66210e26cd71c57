"""Bus handlers: turn alerts, fills and risk-state changes into notifications and dispatch them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import Counter

from tai_bus.api import PermanentHandlerError
from tai_core.clock import Clock
from tai_events.alerts import AlertRaised, Severity
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.ml import ModelPromoted
from tai_events.orders import FillExecuted
from tai_events.research import ResearchRunFinished
from tai_events.risk import RiskStateChanged
from tai_notifier.channels import DeliveryError, Sender, TransientDeliveryError
from tai_notifier.notifications import (
    Channel,
    Decision,
    Notification,
    NotificationPolicy,
    from_alert,
    from_fill,
    from_model_promotion,
    from_research_run,
    from_risk_state,
)
from tai_telemetry.logging import get_logger


@dataclass(frozen=True)
class NotifierContext:
    """What the handlers need: the policy, the senders, a clock and a counter."""

    policy: NotificationPolicy
    senders: Mapping[Channel, Sender]
    clock: Clock
    outcomes: Counter
    fill_severity: Severity
    lifecycle_channels: frozenset[Channel] = frozenset({Channel.TELEGRAM, Channel.EMAIL})
    """Channels of promotions, rollbacks and failed optimizer runs, whatever their severity."""


async def dispatch(notification: Notification, context: NotifierContext) -> dict[Channel, str]:
    """Send to every routed channel the policy allows; return each channel's outcome.

    A transient failure left after the retries is raised so the bus redelivers (channels that
    already delivered are then skipped as duplicates); a permanent one is dead-lettered.
    """
    logger = get_logger("tai_notifier")
    outcomes: dict[Channel, str] = {}
    transient: list[str] = []
    permanent: list[str] = []
    for channel, decision in context.policy.decide(notification, context.clock.now()).items():
        if decision is not Decision.SEND:
            outcomes[channel] = decision.value
            context.outcomes.labels(channel.value, decision.value).inc()
            continue
        try:
            await context.senders[channel].send(notification)
        except TransientDeliveryError as error:
            outcomes[channel] = "failed"
            transient.append(f"{channel.value}: {error}")
        except DeliveryError as error:
            outcomes[channel] = "refused"
            permanent.append(f"{channel.value}: {error}")
        else:
            outcomes[channel] = "sent"
            context.policy.delivered(channel, notification, context.clock.now())
        context.outcomes.labels(channel.value, outcomes[channel]).inc()
    logger.info("notification", key=notification.key, outcomes=dict(outcomes))
    if transient:
        raise DeliveryError("; ".join(transient))
    if permanent:
        raise PermanentHandlerError("; ".join(permanent))
    return outcomes


async def on_alert_raised(message: AlertRaised, context: NotifierContext) -> None:
    """Notify an alert at its own severity."""
    await dispatch(from_alert(message), context)


async def on_fill_executed(message: FillExecuted, context: NotifierContext) -> None:
    """Notify a fill at the configured fill severity."""
    await dispatch(from_fill(message, context.fill_severity), context)


async def on_risk_state_changed(message: RiskStateChanged, context: NotifierContext) -> None:
    """Notify a trading-state change (HALTED is critical)."""
    await dispatch(from_risk_state(message), context)


async def on_research_run_finished(message: ResearchRunFinished, context: NotifierContext) -> None:
    """Notify a finished optimizer run (promotions and failures on the lifecycle channels)."""
    await dispatch(from_research_run(message, context.lifecycle_channels), context)


async def on_model_promoted(message: ModelPromoted, context: NotifierContext) -> None:
    """Notify a promotion or rollback a person made."""
    notification = from_model_promotion(message, context.lifecycle_channels)
    if notification is not None:
        await dispatch(notification, context)


async def handle(envelope: Envelope[Message], context: NotifierContext) -> None:
    """Route one envelope to its handler; other event types are acked and ignored."""
    message = envelope.message
    if isinstance(message, AlertRaised):
        await on_alert_raised(message, context)
    elif isinstance(message, ResearchRunFinished):
        await on_research_run_finished(message, context)
    elif isinstance(message, ModelPromoted):
        await on_model_promoted(message, context)
    elif isinstance(message, FillExecuted):
        await on_fill_executed(message, context)
    elif isinstance(message, RiskStateChanged):
        await on_risk_state_changed(message, context)
