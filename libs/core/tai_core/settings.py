"""Settings shared by every service, and the error that names a bad setting."""

from __future__ import annotations

import ipaddress
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(SystemExit):
    """Raised at start when settings are invalid; the message names each bad setting."""


def infrastructure_field(variable: str, default: str, description: str) -> Any:
    """Declare a setting every service reads from the same shared variable (e.g. ``AMQP_URL``)."""
    return Field(
        default=default,
        validation_alias=AliasChoices(variable.lower(), variable),
        description=description,
    )


class ServiceSettings(BaseSettings):
    """Base for each service's settings: an env prefix, frozen, unknown keys ignored."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    amqp_url: str = infrastructure_field(
        "AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ connection URL"
    )
    database_url: str = infrastructure_field(
        "DATABASE_URL",
        "postgresql+psycopg://postgres@127.0.0.1:5432/tai",
        "SQLAlchemy URL of the ledger database",
    )
    redis_url: str = infrastructure_field(
        "REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL for hot state"
    )
    ops_host: str = infrastructure_field(
        "OPS_HOST", "127.0.0.1", "interface of the ops port; containers set 0.0.0.0 for probes"
    )
    ops_port: int = Field(
        default=8080, ge=0, le=65535, description="port of /health, /ready, /metrics; 0 disables"
    )
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")


SettingsT = TypeVar("SettingsT", bound=BaseSettings)
DEFAULT_BROKER_ACCOUNT = "guest"
LOOPBACK_HOSTS = frozenset({"localhost", "localhost.localdomain"})


def _is_loopback_host(host: str) -> bool:
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def deployed_broker_problem(amqp_url: str) -> str | None:
    """Return why a deployed service must not connect with ``amqp_url``, or None if it may.

    The default virtual host ``/`` carries none of the topic permissions ``trading-ai
    broker-setup`` provisions (only risk may publish ``order.approved``...), so a service on
    it runs without that layer of defence; ``guest`` beyond this machine means a broker whose
    default account was opened to the network. The in-memory bus (``memory://``), used by
    the embedded run, is always fine; so is guest on a loopback broker's own vhost (tests).
    """
    parsed = urlsplit(amqp_url)
    if parsed.scheme not in {"amqp", "amqps"}:
        return None
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    vhost = unquote(path) if path else "/"
    if vhost == "/":
        return (
            "the default vhost '/' has no topic permissions; connect to the provisioned vhost "
            "(`trading-ai broker-setup`, default 'tai') with the service's own account"
        )
    account = unquote(parsed.username) if parsed.username else DEFAULT_BROKER_ACCOUNT
    if account == DEFAULT_BROKER_ACCOUNT and not _is_loopback_host(parsed.hostname or ""):
        return (
            "the 'guest' account must not be used beyond this machine; connect with the "
            "service's own account (`trading-ai broker-setup` creates them)"
        )
    return None


def load_settings(settings_class: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build settings from the environment; on error raise ConfigurationError naming the setting."""
    try:
        return settings_class(**overrides)
    except ValidationError as error:
        prefix = str(settings_class.model_config.get("env_prefix", ""))
        lines = [f"invalid configuration for {settings_class.__name__}:"]
        for item in error.errors(include_url=False):
            field = ".".join(str(part) for part in item["loc"])
            variable = f"{prefix}{field}".upper()
            lines.append(f"  {variable}: {item['msg']}")
        raise ConfigurationError("\n".join(lines)) from None
