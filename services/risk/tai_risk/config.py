"""Risk service settings: every limit and breaker threshold, with documented defaults."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tai_core.settings import ServiceSettings
from tai_quant.risk import RiskMethod
from tai_risk.breakers import BreakerSettings
from tai_risk.checks import RiskLimits


class RiskSettings(ServiceSettings):
    """Settings of the risk service (env prefix ``RISK_``); dicts are given as JSON."""

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
    max_risk_per_trade_pct: float = Field(default=2.0, gt=0, le=100)
    strategy_styles: dict[str, str] = Field(
        default_factory=dict, description='e.g. {"sma_cross": "swing"}'
    )
    style_risk_caps_pct: dict[str, float] = Field(
        default_factory=lambda: {"scalping": 1.0, "intraday": 2.0, "swing": 3.0}
    )
    atr_stop_multiple: float = Field(default=2.0, gt=0)
    max_gross_leverage: float = Field(default=10.0, gt=0)
    max_margin_utilisation_pct: float = Field(default=50.0, gt=0, le=100)
    default_margin_rate: float = Field(default=1.0 / 30.0, gt=0, le=1)
    margin_rates: dict[str, float] = Field(default_factory=dict)
    max_correlated_exposure_pct: float = Field(default=30.0, gt=0)
    correlation_threshold: float = Field(default=0.8, ge=0, le=1)
    return_lookback_days: float = Field(default=60.0, gt=0)
    min_return_observations: int = Field(default=30, ge=3)
    max_var_pct: float = Field(default=2.0, gt=0)
    var_confidence: float = Field(default=0.95, gt=0, lt=1)
    max_cvar_pct: float = Field(default=3.0, gt=0)
    cvar_confidence: float = Field(default=0.975, gt=0, lt=1)
    var_method: RiskMethod = RiskMethod.HISTORICAL
    var_horizon_days: float = Field(default=1.0, gt=0)
    monte_carlo_simulations: int = Field(default=20_000, ge=100)
    max_orders_per_minute: int = Field(default=10, ge=1)
    stale_after_bars: int = Field(default=3, ge=1)
    require_market_data: bool = True
    kelly_fraction: float = Field(default=0.25, gt=0, le=1)
    kelly_cap: float = Field(default=0.25, gt=0, le=1)
    default_payoff_ratio: float = Field(default=1.0, gt=0)
    market_history_bars: int = Field(
        default=2_000, ge=10, description="bars kept per symbol (returns, ATR)"
    )
    atr_period: int = Field(default=14, ge=1)
    atr_mean_bars: int = Field(default=100, ge=2)
    daily_loss_halt_pct: float = Field(default=3.0, gt=0)
    drawdown_reduce_pct: float = Field(default=7.0, gt=0)
    drawdown_halt_pct: float = Field(default=10.0, gt=0)
    max_consecutive_losses: int = Field(default=5, ge=1)
    volatility_spike_multiple: float = Field(default=3.0, gt=1)
    error_burst_count: int = Field(default=5, ge=1)
    error_burst_window_seconds: float = Field(default=60.0, gt=0)
    session_start_hour_utc: int = Field(default=0, ge=0, le=23)
    outbox_sweep_seconds: float = Field(
        default=1.0, ge=0, description="timer publishing outbox leftovers; 0 disables"
    )

    def limits(self) -> RiskLimits:
        """Return the pre-trade limits these settings describe."""
        return RiskLimits.model_validate(
            {name: getattr(self, name) for name in RiskLimits.model_fields if hasattr(self, name)}
        )

    def breakers(self) -> BreakerSettings:
        """Return the circuit breaker thresholds these settings describe."""
        return BreakerSettings.model_validate(
            {name: getattr(self, name) for name in BreakerSettings.model_fields}
        )
