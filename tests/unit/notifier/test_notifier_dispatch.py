"""Dispatching: retries of transient failures, redelivery semantics, dead-lettering refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, Counter

from tai_bus.api import PermanentHandlerError
from tai_core.clock import FakeClock
from tai_events.alerts import Severity
from tai_notifier.channels import DeliveryError, RetryingSender, TransientDeliveryError
from tai_notifier.handlers import NotifierContext, dispatch
from tai_notifier.notifications import (
    Channel,
    Deduplicator,
    Notification,
    NotificationPolicy,
    SeverityRouting,
    Throttle,
)

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


class ScriptedSender:
    """Fail with the scripted errors first, then succeed; record what was delivered."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.attempts = 0
        self.delivered: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        self.delivered.append(notification)


def context(telegram: object, email: object) -> NotifierContext:
    return NotifierContext(
        policy=NotificationPolicy(
            SeverityRouting.from_lists([Severity.CRITICAL], [Severity.CRITICAL]),
            Deduplicator(timedelta(minutes=5)),
            Throttle(10, timedelta(minutes=1)),
        ),
        senders={Channel.TELEGRAM: telegram, Channel.EMAIL: email},  # type: ignore[dict-item]
        clock=FakeClock(T0),
        outcomes=Counter("n", "n", ["channel", "outcome"], registry=CollectorRegistry()),
        fill_severity=Severity.INFO,
    )


CRITICAL = Notification(Severity.CRITICAL, "halted", "body", "risk:HALTED")


async def test_transient_failures_are_retried_until_delivered() -> None:
    flaky = ScriptedSender(TransientDeliveryError("503"), TransientDeliveryError("503"))
    sender = RetryingSender(flaky, attempts=3, initial_seconds=0, max_seconds=0)
    await sender.send(CRITICAL)
    assert flaky.attempts == 3
    assert flaky.delivered == [CRITICAL]


async def test_permanent_failures_are_not_retried() -> None:
    refused = ScriptedSender(DeliveryError("400"))
    sender = RetryingSender(refused, attempts=5, initial_seconds=0, max_seconds=0)
    with pytest.raises(DeliveryError):
        await sender.send(CRITICAL)
    assert refused.attempts == 1


async def test_a_redelivery_skips_the_channel_that_already_delivered() -> None:
    # Arrange: e-mail is down once, Telegram works
    telegram = ScriptedSender()
    email = ScriptedSender(TransientDeliveryError("down"))
    ctx = context(telegram, email)
    # Act: the first delivery fails (the bus will redeliver), the redelivery succeeds
    with pytest.raises(DeliveryError):
        await dispatch(CRITICAL, ctx)
    outcomes = await dispatch(CRITICAL, ctx)
    # Assert
    assert outcomes == {Channel.EMAIL: "sent", Channel.TELEGRAM: "duplicate"}
    assert len(telegram.delivered) == 1
    assert len(email.delivered) == 1


async def test_a_refused_notification_is_dead_lettered() -> None:
    ctx = context(ScriptedSender(DeliveryError("400 chat not found")), ScriptedSender())
    with pytest.raises(PermanentHandlerError, match="chat not found"):
        await dispatch(CRITICAL, ctx)
