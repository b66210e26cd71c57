"""Inference service settings."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tai_core.settings import ServiceSettings
from tai_events.market import Timeframe


class InferenceSettings(ServiceSettings):
    """Settings of the inference service (env prefix ``INFERENCE_``)."""

    model_config = SettingsConfigDict(env_prefix="INFERENCE_", frozen=True, extra="ignore")

    timeframe: Timeframe = Timeframe.H1
    symbols: tuple[str, ...] = Field(
        default=("EURUSD",),
        description="symbols whose production model is loaded at start (others on first bar)",
    )
    warm_up_bars: int = Field(
        default=500, ge=0, description="stored bars replayed into the features on a first bar"
    )
    psi_threshold: float = Field(default=0.25, gt=0, description="PSI that counts as drift")
    drift_window: int = Field(default=500, ge=50, description="bars in the live PSI window")
    drift_check_every: int = Field(default=100, ge=1, description="bars between PSI checks")
    quality_window: int = Field(default=200, ge=20, description="resolved predictions scored")
    quality_tolerance: float = Field(
        default=0.15, gt=0, description="relative log-loss degradation that flags the model"
    )
    max_model_age_hours: float = Field(
        default=336.0,
        ge=0,
        description=(
            "refuse to predict with a model whose newest training bar is older than this "
            "(alert + retraining request); 0 = never expire"
        ),
    )

    def max_model_age(self) -> timedelta | None:
        """Return the model age limit, or None when models never expire."""
        return timedelta(hours=self.max_model_age_hours) if self.max_model_age_hours else None
