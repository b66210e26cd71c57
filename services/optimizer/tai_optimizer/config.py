"""Settings of the optimizer service (env prefix ``OPTIMIZER_``): how models are retrained."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tai_core.settings import ServiceSettings
from tai_events.market import Timeframe
from tai_optimizer.lifecycle import LifecycleSettings, ModelGates


class OptimizerSettings(ServiceSettings):
    """The optimizer service: retrains on drift and expiry, concludes model shadows on bars.

    The nightly work (every strategy's re-optimisation, the scheduled retrain) is the
    ``trading-ai optimize --daily`` job; this long-running service acts between two nights.
    """

    model_config = SettingsConfigDict(env_prefix="OPTIMIZER_", frozen=True, extra="ignore")

    timeframe: Timeframe = Timeframe.H1
    model_training_bars: int = Field(
        default=3_000, ge=500, description="bars the challenger model learns from"
    )
    model_folds: int = Field(default=3, ge=1, description="walk-forward folds of a challenger")
    model_shadow_bars: int = Field(
        default=120, ge=2, description="bars a challenger shadows the champion before a verdict"
    )
    min_sharpe_improvement: float = Field(
        default=0.0, description="shadow Sharpe margin a challenger must beat the champion by"
    )
    max_extra_drawdown_pct: float = Field(default=2.0, ge=0)
    min_walk_forward_sharpe: float = Field(default=0.0)
    min_deflated_sharpe: float = Field(default=0.95, ge=0, le=1)
    max_pbo: float = Field(default=0.5, ge=0, le=1)
    cash: float = Field(default=100_000.0, gt=0, description="account the shadows trade")
    leverage: float = Field(default=30.0, ge=1)
    commission_rate: float = Field(default=0.0002, ge=0, lt=0.1)
    data_fallback: bool = Field(
        default=True, description="train on the bundled sample when the ledger lacks bars"
    )

    def lifecycle(self, symbol: str) -> LifecycleSettings:
        """Return the model lifecycle settings of one symbol."""
        return LifecycleSettings(
            symbol=symbol,
            timeframe=self.timeframe,
            training_bars=self.model_training_bars,
            min_training_bars=min(self.model_training_bars, 1_000),
            data_fallback=self.data_fallback,
            folds=self.model_folds,
            shadow_bars=self.model_shadow_bars,
            cash=self.cash,
            leverage=self.leverage,
            commission_rate=self.commission_rate,
            gates=ModelGates(
                min_walk_forward_sharpe=self.min_walk_forward_sharpe,
                min_deflated_sharpe=self.min_deflated_sharpe,
                max_pbo=self.max_pbo,
            ),
            min_sharpe_improvement=self.min_sharpe_improvement,
            max_extra_drawdown_pct=self.max_extra_drawdown_pct,
        )
