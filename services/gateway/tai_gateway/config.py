"""Gateway settings: where the API and console listen, session secret, login and rate limits."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from tai_core.settings import ServiceSettings

MINIMUM_SECRET_LENGTH = 32


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
    session_cookie_secure: bool = Field(
        default=True, description="Send the session cookie over HTTPS only"
    )
    session_minutes: int = Field(default=480, ge=1, description="Console session lifetime")
    token_minutes: int = Field(default=60, ge=1, description="API bearer token lifetime")
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed logins in a row that lock an account"
    )
    lockout_minutes: int = Field(default=15, ge=1, description="How long a lock-out lasts")
    api_rate_limit_per_minute: int = Field(
        default=120, ge=1, description="Requests per minute per user (or per IP before login)"
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
    risk_max_position_notional_pct: float = Field(
        default=20.0, gt=0, description="Mirror of the risk limit, shown on the Risk tab"
    )
    risk_max_open_positions: int = Field(default=10, ge=1, description="Mirror of the limit")
    risk_max_drawdown_pct: float = Field(default=10.0, gt=0, description="Mirror of the limit")
    risk_max_daily_loss_pct: float = Field(default=3.0, gt=0, description="Mirror of the limit")
    risk_max_var_pct: float = Field(default=2.0, gt=0, description="Mirror of the limit")
    risk_var_confidence: float = Field(default=0.95, gt=0, lt=1, description="VaR confidence")

    @field_validator("session_secret")
    @classmethod
    def _secret_is_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MINIMUM_SECRET_LENGTH:
            raise ValueError(f"must be at least {MINIMUM_SECRET_LENGTH} characters")
        return value
