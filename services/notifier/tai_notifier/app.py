"""Composition root of the notifier: subscribe to alerts, fills and risk states; deliver."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import httpx
from prometheus_client import Counter

from tai_bus.api import Binding, MessageBus, Subscription
from tai_core.clock import Clock
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.topics import (
    ALL_ALERTS,
    ALL_RESEARCH_RUNS,
    EXECUTION_FILL,
    MODEL_PROMOTED,
    RISK_STATE,
    queue_name,
)
from tai_notifier.channels import EmailSender, RetryingSender, Sender, TelegramSender
from tai_notifier.config import NotifierSettings
from tai_notifier.handlers import NotifierContext, handle
from tai_notifier.notifications import (
    Channel,
    Deduplicator,
    NotificationPolicy,
    SeverityRouting,
    Throttle,
)
from tai_store.database import Store
from tai_telemetry.logging import get_logger
from tai_telemetry.metrics import Telemetry

NOTIFICATIONS_QUEUE = queue_name("notifier", "notifications")
"""``tai.notifier.notifications``: alert.*, execution.fill, risk.state, research.run.* and
model.promoted."""
BINDINGS = (
    Binding(ALL_ALERTS),
    Binding(EXECUTION_FILL),
    Binding(RISK_STATE),
    Binding(ALL_RESEARCH_RUNS),
    Binding(MODEL_PROMOTED),
)


class NotifierApp:
    """The running notifier."""

    name = "notifier"

    def __init__(
        self,
        settings: NotifierSettings,
        *,
        bus: MessageBus,
        clock: Clock,
        telemetry: Telemetry,
        senders: Mapping[Channel, Sender] | None = None,
    ) -> None:
        self.settings = settings
        self._bus = bus
        self._client: httpx.AsyncClient | None = None
        if senders is None:
            self._client = httpx.AsyncClient(timeout=settings.http_timeout_seconds)
            senders = build_senders(settings, self._client)
        policy = NotificationPolicy(
            SeverityRouting.from_lists(settings.telegram_severities, settings.email_severities),
            Deduplicator(timedelta(seconds=settings.deduplicate_seconds)),
            Throttle(settings.throttle_per_minute, timedelta(minutes=1)),
        )
        self.context = NotifierContext(
            policy=policy,
            senders=senders,
            clock=clock,
            outcomes=Counter(
                "tai_notifier_notifications",
                "Notifications by channel and outcome",
                ["channel", "outcome"],
                registry=telemetry.registry,
            ),
            fill_severity=settings.fill_severity,
            lifecycle_channels=frozenset(settings.lifecycle_channels),
        )
        self._subscribed = False

    async def _on_message(self, envelope: Envelope[Message]) -> None:
        await handle(envelope, self.context)

    async def start(self) -> None:
        """Subscribe the notifications queue."""
        if not self._subscribed:
            await self._bus.subscribe(Subscription(NOTIFICATIONS_QUEUE, BINDINGS, self._on_message))
            self._subscribed = True
        get_logger("tai_notifier").info("notifier_started", queue=NOTIFICATIONS_QUEUE)

    def ready(self) -> bool:
        """Return True once subscribed."""
        return self._subscribed

    async def stop(self) -> None:
        """Close the HTTP client (the bus is closed by its owner)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def build_senders(settings: NotifierSettings, client: httpx.AsyncClient) -> dict[Channel, Sender]:
    """Return the Telegram and e-mail senders, each wrapped in retries."""

    def retrying(sender: Sender) -> Sender:
        return RetryingSender(
            sender,
            attempts=settings.retry_attempts,
            initial_seconds=settings.retry_initial_seconds,
            max_seconds=settings.retry_max_seconds,
        )

    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return {
        Channel.TELEGRAM: retrying(
            TelegramSender(
                client,
                settings.telegram_api_url,
                settings.telegram_bot_token.get_secret_value(),
                settings.telegram_chat_id.get_secret_value(),
            )
        ),
        Channel.EMAIL: retrying(
            EmailSender(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.mail_from,
                recipients=settings.mail_to,
                username=settings.smtp_username,
                password=password,
                starttls=settings.smtp_starttls,
                timeout_seconds=settings.smtp_timeout_seconds,
            )
        ),
    }


def create_app(
    settings: NotifierSettings,
    *,
    bus: MessageBus,
    store: Store,
    clock: Clock,
    telemetry: Telemetry,
) -> NotifierApp:
    """Wire the notifier (it keeps no ledger state: ``store`` is accepted for the runtime)."""
    del store
    return NotifierApp(settings, bus=bus, clock=clock, telemetry=telemetry)
