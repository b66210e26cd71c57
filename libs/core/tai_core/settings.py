"""Settings shared by every service, and the error that names a bad setting."""

from __future__ import annotations

from typing import Any, TypeVar

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
