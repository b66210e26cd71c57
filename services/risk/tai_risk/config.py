"""Risk service settings: every limit and breaker threshold, with documented defaults."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tai_core.settings import ServiceSettings
from tai_risk.breakers import BreakerSettings
from tai_risk.checks import RiskLimits


class RiskPolicy(BaseSettings, RiskLimits, BreakerSettings):
    """Every pre-trade limit and breaker threshold, from ``RISK_*`` (dicts as JSON).

    Each is declared once, in RiskLimits or BreakerSettings with its documented default; this
    takes them all, so ``RISK_MAX_VAR_PCT`` sets ``RiskLimits.max_var_pct``. The risk service
    and ``trading-ai backtest --live-risk`` read the same policy; what risk enforces is
    published in RiskLimitsPublished for the console and API to show.
    """

    model_config = SettingsConfigDict(env_prefix="RISK_", frozen=True, extra="ignore")

    def limits(self) -> RiskLimits:
        """Return the pre-trade limits of this policy."""
        return RiskLimits.model_validate(
            {name: getattr(self, name) for name in RiskLimits.model_fields}
        )

    def breakers(self) -> BreakerSettings:
        """Return the circuit breaker thresholds of this policy."""
        return BreakerSettings.model_validate(
            {name: getattr(self, name) for name in BreakerSettings.model_fields}
        )


class RiskSettings(ServiceSettings, RiskPolicy):
    """Settings of the risk service (env prefix ``RISK_``): its policy, key and ledger."""

    model_config = SettingsConfigDict(env_prefix="RISK_", frozen=True, extra="ignore")

    approval_private_key: SecretStr = Field(
        description="Ed25519 private key (PKCS#8 PEM) that signs approvals; no default"
    )
    account: str = Field(default="paper", min_length=1, max_length=64)
    initial_equity: float = Field(default=100_000.0, gt=0)
    market_history_bars: int = Field(
        default=2_000, ge=10, description="bars kept per symbol (returns, ATR)"
    )
    atr_period: int = Field(default=14, ge=1)
    atr_mean_bars: int = Field(default=100, ge=2)
    limits_announce_seconds: float = Field(
        default=60.0, ge=0, description="re-publish RiskLimitsPublished this often; 0: at start"
    )
    outbox_sweep_seconds: float = Field(
        default=1.0, ge=0, description="timer publishing outbox leftovers; 0 disables"
    )
