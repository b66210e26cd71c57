"""Strategy service settings."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from tai_core.settings import ServiceSettings
from tai_events.base import ScalarValue
from tai_events.market import Timeframe
from tai_strategy.registry import STRATEGY_TYPES

DEFAULT_STRATEGIES = ("scalping", "intraday", "swing", "ml_driven", "sma_cross")
"""The seed's portfolio: every strategy runs unless the settings choose otherwise."""


class StrategySettings(ServiceSettings):
    """Settings of the strategy service (env prefix ``STRATEGY_``).

    By default the whole portfolio runs: scalping, intraday, swing, ml_driven and sma_cross
    (``sma_fast``/``sma_slow``/``quantity``). Choose others in ``STRATEGY_STRATEGIES`` (JSON,
    e.g. ``["sma_cross", "scalping"]``) and give their parameters in ``STRATEGY_PARAMETERS``
    (JSON object of objects, keyed by strategy name).
    """

    model_config = SettingsConfigDict(env_prefix="STRATEGY_", frozen=True, extra="ignore")

    timeframe: Timeframe = Timeframe.H1
    sma_fast: int = Field(default=10, ge=1)
    sma_slow: int = Field(default=30, ge=2)
    quantity: float = Field(default=10_000.0, gt=0)
    warm_up_bars: int = Field(
        default=0, ge=0, description="stored bars replayed on start; 0 replays all history"
    )
    strategies: tuple[str, ...] = Field(
        default=DEFAULT_STRATEGIES, min_length=1, description="strategies that run from the start"
    )
    parameters: dict[str, dict[str, ScalarValue]] = Field(
        default_factory=dict, description="per-strategy parameters overriding the defaults"
    )
    regime_weights: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="per-strategy weights by regime, replacing the built-in defaults",
    )
    announce_seconds: float = Field(
        default=60.0, ge=0, description="re-publish every strategy's state this often; 0: at start"
    )
    history_bars: int = Field(
        default=1_000, ge=0, description="recent bars kept to re-warm a re-parameterised strategy"
    )

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in STRATEGY_TYPES]
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; known: {sorted(STRATEGY_TYPES)}")
        if len(set(value)) != len(value):
            raise ValueError("a strategy is listed twice")
        return value

    def strategy_parameters(self) -> dict[str, dict[str, Any]]:
        """Return each strategy's parameters, sma_cross defaulting to the sma_* settings."""
        chosen: dict[str, dict[str, Any]] = {
            name: dict(values) for name, values in self.parameters.items()
        }
        chosen["sma_cross"] = {
            "fast": self.sma_fast,
            "slow": self.sma_slow,
            "quantity": self.quantity,
            **chosen.get("sma_cross", {}),
        }
        return chosen
