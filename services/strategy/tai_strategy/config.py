"""Strategy service settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tai_core.settings import ServiceSettings
from tai_events.market import Timeframe


class StrategySettings(ServiceSettings):
    """Settings of the strategy service (env prefix ``STRATEGY_``)."""

    model_config = SettingsConfigDict(env_prefix="STRATEGY_", frozen=True, extra="ignore")

    timeframe: Timeframe = Timeframe.H1
    sma_fast: int = Field(default=10, ge=1)
    sma_slow: int = Field(default=30, ge=2)
    quantity: float = Field(default=10_000.0, gt=0)
    warm_up_bars: int = Field(
        default=0, ge=0, description="stored bars replayed on start; 0 replays all history"
    )
