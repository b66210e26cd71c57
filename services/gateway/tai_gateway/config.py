"""Gateway settings: where the API and console listen, session secret, login and rate limits."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from tai_core.settings import ServiceSettings

MINIMUM_SECRET_LENGTH = 32
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    """Return True when ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class GatewaySettings(ServiceSettings):
    """Settings of the gateway (env prefix ``GATEWAY_``); the session secret has no default."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", frozen=True, extra="ignore", populate_by_name=True
    )

    api_host: str = Field(default="127.0.0.1", description="Interface the REST API binds")
    api_port: int = Field(default=8000, ge=0, le=65535, description="REST API port")
    console_host: str = Field(default="127.0.0.1", description="Interface the console binds")
    console_port: int = Field(default=8050, ge=0, le=65535, description="Dash console port")
    session_secret: SecretStr = Field(
        description="Signs console session cookies and API tokens (at least 32 characters)"
    )
    session_cookie_secure: bool | None = Field(
        default=None,
        description="Send the session cookie over HTTPS only; unset: yes unless the console "
        "binds loopback only. A non-loopback console always sends it Secure.",
    )
    session_minutes: int = Field(default=480, ge=1, description="Console session lifetime")
    token_minutes: int = Field(default=60, ge=1, description="API bearer token lifetime")
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed sign-ins of one account name from one address before back-off",
    )
    login_source_max_failures: int = Field(
        default=20, ge=1, description="Failed sign-ins from one address (any name) before back-off"
    )
    login_backoff_seconds: float = Field(
        default=2.0, gt=0, description="First back-off wait; each further failure doubles it"
    )
    login_backoff_max_minutes: float = Field(
        default=15.0, gt=0, description="Longest back-off wait"
    )
    login_forget_minutes: float = Field(
        default=60.0, gt=0, description="Failures older than this no longer count"
    )
    api_rate_limit_per_minute: int = Field(
        default=120, ge=1, description="Requests per minute per user (or per IP before login)"
    )
    api_max_body_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest request body the API reads; larger ones get 413 before any work",
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated addresses/networks of reverse proxies whose "
        "X-Forwarded-For/-Proto are believed; empty: forwarded headers are ignored",
    )
    operator_public_keys: str = Field(
        default="",
        description="PEM Ed25519 public key(s) of operators allowed the break-glass halt "
        "(`trading-ai keys operator`); empty: the break-glass endpoint refuses everything",
    )
    break_glass_max_age_seconds: float = Field(
        default=120.0, gt=0, le=3600, description="How old a signed break-glass request may be"
    )
    account: str = Field(default="paper", min_length=1, description="Ledger account shown")
    console_workers: int = Field(
        default=8, ge=1, le=64, description="Threads serving the console's WSGI requests"
    )

    research_directory: Path = Field(
        default=Path(".data/backtests"), description="Where backtests started here keep reports"
    )
    research_data_directory: Path | None = Field(
        default=None, description="CSV files a backtest may be started on (none: disabled)"
    )
    max_running_backtests: int = Field(default=2, ge=1, le=16, description="Concurrent runs")

    @field_validator("session_secret")
    @classmethod
    def _secret_is_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MINIMUM_SECRET_LENGTH:
            raise ValueError(f"must be at least {MINIMUM_SECRET_LENGTH} characters")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            if entry == "*":
                raise ValueError("'*' would trust forwarded headers from anyone; list the proxies")
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @model_validator(mode="after")
    def _cookie_is_secure_beyond_loopback(self) -> Self:
        if self.session_cookie_secure is False and not is_loopback(self.console_host):
            raise ValueError(
                "session_cookie_secure=false is only allowed while the console binds loopback "
                f"(console_host is {self.console_host!r}); serve the console over HTTPS"
            )
        return self

    @property
    def cookie_secure(self) -> bool:
        """Return whether the session cookies carry ``Secure`` (always, beyond loopback)."""
        if self.session_cookie_secure is None:
            return not is_loopback(self.console_host)
        return self.session_cookie_secure
