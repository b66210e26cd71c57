"""Delivery adapters: the Telegram Bot API over httpx and e-mail over SMTP, with retries."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from tai_notifier.notifications import Notification


class DeliveryError(Exception):
    """A channel could not deliver a notification."""


class TransientDeliveryError(DeliveryError):
    """A failure worth retrying (network error, timeout, 429, 5xx)."""


class Sender(Protocol):
    """Deliver one notification or raise DeliveryError."""

    async def send(self, notification: Notification) -> None:
        """Deliver ``notification``."""
        ...


class TelegramSender:
    """Send messages with the Bot API's ``sendMessage``."""

    def __init__(self, client: httpx.AsyncClient, api_url: str, token: str, chat_id: str) -> None:
        self._client = client
        self._url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
        self._chat_id = chat_id

    async def send(self, notification: Notification) -> None:
        """POST the message; 429 and 5xx are transient, other refusals are not."""
        try:
            response = await self._client.post(
                self._url,
                json={
                    "chat_id": self._chat_id,
                    "text": notification.text,
                    "disable_web_page_preview": True,
                },
            )
        except httpx.HTTPError as error:
            # The URL holds the token: report only the error type.
            raise TransientDeliveryError(f"telegram unreachable: {type(error).__name__}") from None
        if response.status_code == httpx.codes.TOO_MANY_REQUESTS or response.status_code >= 500:
            raise TransientDeliveryError(f"telegram answered {response.status_code}")
        if response.status_code >= 400:
            raise DeliveryError(f"telegram refused the message: {response.status_code}")


class EmailSender:
    """Send plain-text e-mails through an SMTP server."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._recipients = list(recipients)
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout = timeout_seconds

    def message(self, notification: Notification) -> EmailMessage:
        """Return the e-mail for a notification."""
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = ", ".join(self._recipients)
        mail["Subject"] = f"[Trading AI {notification.severity.value.upper()}] {notification.title}"
        mail.set_content(notification.body)
        return mail

    async def send(self, notification: Notification) -> None:
        """Deliver the e-mail; connection problems and 4xx replies are transient."""
        try:
            await aiosmtplib.send(
                self.message(notification),
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                start_tls=self._starttls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPResponseException as error:
            if 400 <= error.code < 500:
                raise TransientDeliveryError(f"smtp answered {error.code}") from error
            raise DeliveryError(f"smtp refused the message: {error.code}") from error
        except (aiosmtplib.SMTPException, OSError) as error:
            raise TransientDeliveryError(f"smtp unreachable: {type(error).__name__}") from error


class RetryingSender:
    """Retry a sender's transient failures with exponential back-off (tenacity)."""

    def __init__(
        self, sender: Sender, *, attempts: int, initial_seconds: float, max_seconds: float
    ) -> None:
        self._sender = sender
        self._attempts = attempts
        self._initial = initial_seconds
        self._max = max_seconds

    async def send(self, notification: Notification) -> None:
        """Deliver, retrying transient errors; re-raise the last error when attempts run out."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._initial, max=self._max),
            retry=retry_if_exception_type(TransientDeliveryError),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._sender.send(notification)
