"""Execution service settings."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from tai_core.settings import ServiceSettings
from tai_events.market import Timeframe


class ExecutionSettings(ServiceSettings):
    """Settings of the execution service (env prefix ``EXECUTION_``)."""

    model_config = SettingsConfigDict(env_prefix="EXECUTION_", frozen=True, extra="ignore")

    approval_public_keys: str = Field(
        description="PEM public key(s) of risk's approval signer; several during a rotation"
    )
    approval_max_lifetime_seconds: float = Field(
        default=900.0,
        gt=0,
        le=86_400,
        description="longest validity (expires_at - issued_at) of an approval execution acts "
        "on; keep it at or above risk's RISK_APPROVAL_TTL_SECONDS",
    )
    account: str = Field(default="paper", min_length=1, max_length=64)
    initial_cash: float = Field(default=100_000.0, gt=0)
    account_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    instrument_currencies: dict[str, str] = Field(
        default_factory=dict,
        description="quote currency of symbols that are not six-letter FX pairs (JSON object)",
    )
    broker: Literal["paper", "ig"] = "paper"
    commission_rate: float = Field(default=0.0002, ge=0, lt=0.1)
    commission_per_trade: float = Field(default=0.0, ge=0)
    commission_per_unit: float = Field(default=0.0, ge=0)
    slippage_bps: float = Field(default=0.0, ge=0)
    spread_bps: float = Field(default=0.0, ge=0, le=1000)
    max_volume_share: float | None = Field(default=None, gt=0, le=1)
    timeframe: Timeframe = Timeframe.H1
    outbox_sweep_seconds: float = Field(
        default=1.0, ge=0, description="timer publishing outbox leftovers; 0 disables"
    )
    reconcile_seconds: float = Field(
        default=60.0, ge=0, description="timer comparing broker and ledger positions; 0 disables"
    )
    snapshot_flush_seconds: float = Field(
        default=1.0,
        ge=0,
        description="the per-bar equity snapshots are written in one batch this often; "
        "0 writes each bar's at once",
    )
    ig_environment: Literal["demo", "live"] = "demo"
    ig_base_url: str | None = Field(
        default=None, description="overrides the demo/live endpoint (a local stub in tests)"
    )
    ig_api_key: SecretStr | None = None
    ig_identifier: str | None = None
    ig_password: SecretStr | None = None
    ig_epics: dict[str, str] = Field(
        default_factory=dict,
        description="symbol -> IG epic (JSON object); FX pairs default to CS.D.<PAIR>.MINI.IP",
    )
    ig_contract_sizes: dict[str, float] = Field(
        default_factory=dict,
        description="symbol -> units per IG contract, overriding the market's (JSON object)",
    )
    ig_currency_code: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description="deal in this currency where the market offers it, else in its default",
    )
    ig_timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("ig_api_key", "ig_identifier", "ig_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose passes an unset optional credential (${IG_API_KEY:-}) as an empty value.
        return None if value == "" else value

    @model_validator(mode="after")
    def _require_ig_credentials(self) -> Self:
        if self.broker == "ig":
            missing = [
                name
                for name in ("ig_api_key", "ig_identifier", "ig_password")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(
                    "broker 'ig' needs "
                    + ", ".join(f"EXECUTION_{name.upper()}" for name in missing)
                    + " from the environment"
                )
        return self
