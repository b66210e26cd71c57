"""Notifier settings (env prefix ``NOTIFIER_``): channels, routing, throttling, retries."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from tai_core.settings import ServiceSettings
from tai_events.alerts import Severity
from tai_notifier.notifications import Channel


class NotifierSettings(ServiceSettings):
    """Notifier settings; the Telegram token, chat id and SMTP host have no default."""

    model_config = SettingsConfigDict(
        env_prefix="NOTIFIER_", frozen=True, extra="ignore", populate_by_name=True
    )

    telegram_bot_token: SecretStr = Field(description="Telegram Bot API token (from BotFather)")
    telegram_chat_id: SecretStr = Field(description="Telegram chat that receives notifications")
    telegram_api_url: str = Field(
        default="https://api.telegram.org", description="Base URL of the Telegram Bot API"
    )
    smtp_host: str = Field(min_length=1, description="SMTP server host")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP server port")
    smtp_username: str | None = Field(default=None, description="SMTP login (None: no AUTH)")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password")
    smtp_starttls: bool = Field(default=True, description="Upgrade the connection with STARTTLS")
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, description="SMTP timeout")
    mail_from: str = Field(min_length=3, description="Sender address of notification e-mails")
    mail_to: list[str] = Field(min_length=1, description="Recipients of notification e-mails")
    telegram_severities: list[Severity] = Field(
        default=[Severity.WARNING, Severity.CRITICAL],
        description="Severities sent to Telegram",
    )
    email_severities: list[Severity] = Field(
        default=[Severity.CRITICAL], description="Severities sent by e-mail"
    )
    fill_severity: Severity = Field(
        default=Severity.INFO, description="Severity given to fill notifications"
    )
    lifecycle_channels: list[Channel] = Field(
        default=[Channel.TELEGRAM, Channel.EMAIL],
        description="Channels of promotions, rollbacks and failed optimizer runs",
    )
    throttle_per_minute: int = Field(
        default=20, ge=1, description="Messages per channel per minute; CRITICAL is never throttled"
    )
    deduplicate_seconds: float = Field(
        default=300.0, ge=0, description="Identical notifications inside this window are sent once"
    )
    retry_attempts: int = Field(default=4, ge=1, le=20, description="Attempts per delivery")
    retry_initial_seconds: float = Field(
        default=0.5, ge=0, description="First retry delay (doubles each attempt)"
    )
    retry_max_seconds: float = Field(default=30.0, ge=0, description="Longest retry delay")
    http_timeout_seconds: float = Field(default=10.0, gt=0, description="Bot API timeout")

    @field_validator("smtp_username", "smtp_password", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: Any) -> Any:
        # Compose passes an unset optional variable as an empty string: that means "no AUTH".
        return None if value == "" else value
