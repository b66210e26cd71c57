"""Risk service settings."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tai_core.settings import ServiceSettings


class RiskSettings(ServiceSettings):
    """Settings of the risk service (env prefix ``RISK_``)."""

    model_config = SettingsConfigDict(env_prefix="RISK_", frozen=True, extra="ignore")

    approval_private_key: SecretStr = Field(
        description="Ed25519 private key (PKCS#8 PEM) that signs approvals; no default"
    )
    account: str = Field(default="paper", min_length=1, max_length=64)
    initial_equity: float = Field(default=100_000.0, gt=0)
    max_position_notional_pct: float = Field(default=20.0, gt=0)
    max_open_positions: int = Field(default=10, ge=1)
    max_price_deviation_pct: float = Field(default=5.0, gt=0)
    fill_price_tolerance_pct: float = Field(default=2.0, gt=0)
    approval_ttl_seconds: float = Field(default=300.0, gt=0)
    outbox_sweep_seconds: float = Field(
        default=1.0, ge=0, description="timer publishing outbox leftovers; 0 disables"
    )
