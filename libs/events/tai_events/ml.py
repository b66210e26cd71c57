"""Machine-learning events: predictions and model lifecycle."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tai_events.base import (
    Event,
    Identifier,
    Name,
    Probability,
    ShortText,
    Symbol,
    UtcDatetime,
)
from tai_events.market import Timeframe


class PredictedClass(StrEnum):
    """Direction classes a model predicts (triple-barrier labels)."""

    LONG = "LONG"
    SHORT = "SHORT"
    NEUTRAL = "NEUTRAL"


class ModelStage(StrEnum):
    """Lifecycle stage of a registered model."""

    CANDIDATE = "candidate"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class TradePlan(BaseModel):
    """The trade a model's classes stand for, and when its prediction is traded.

    One plan drives the triple-barrier labels a model learns (LONG = the price reaches
    ``take_profit_atr`` ATRs above the close before ``stop_loss_atr`` ATRs below it, within
    ``max_horizon_bars``; SHORT the mirror image), the trading result its validation reports
    (a class taken at ``probability_threshold`` or more, exited at the same barriers), and the
    trades the ``ml_driven`` strategy places. It is stored with the model in the registry and
    travels on every prediction, so a strategy can only trade the plan its model learnt;
    changing the plan means training a new model.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    take_profit_atr: float = Field(gt=0, le=50, description="target distance in ATRs")
    stop_loss_atr: float = Field(gt=0, le=50, description="stop distance in ATRs")
    max_horizon_bars: int = Field(ge=1, le=10_000, description="bars before a time exit")
    probability_threshold: Probability = Field(
        gt=0, description="minimum probability of the predicted LONG/SHORT class to trade it"
    )
    atr_period: int = Field(default=14, ge=1, le=500, description="Wilder ATR length in bars")

    def describe(self) -> str:
        """Return the plan in one line (for reasons, logs and reports)."""
        return (
            f"target {self.take_profit_atr:g} ATR / stop {self.stop_loss_atr:g} ATR"
            f"({self.atr_period}) / {self.max_horizon_bars} bars / p >= "
            f"{self.probability_threshold:g}"
        )


DEFAULT_TRADE_PLAN = TradePlan(
    take_profit_atr=3.0, stop_loss_atr=2.0, max_horizon_bars=24, probability_threshold=0.5
)
"""The plan models are trained for unless told otherwise (the ml_driven exits of the seed)."""


class PredictionMade(Event):
    """A model produced class probabilities for a closed bar, for the plan it was trained for.

    Version 2 added ``plan`` (required): a consumer trades exactly the model's trade plan.
    """

    schema_version: ClassVar[int] = 2

    symbol: Symbol
    timeframe: Timeframe
    bar_closed_at: UtcDatetime
    model_id: Identifier
    feature_set_version: str = Field(max_length=64)
    probabilities: dict[PredictedClass, Probability]
    predicted_class: PredictedClass
    regime: str | None = Field(default=None, max_length=32)
    plan: TradePlan
    """The trade plan the model was trained for: target, stop, horizon and threshold."""

    @model_validator(mode="after")
    def _check_distribution(self) -> Self:
        if set(self.probabilities) != set(PredictedClass):
            raise ValueError("probabilities must give LONG, SHORT and NEUTRAL")
        total = math.fsum(self.probabilities.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"probabilities must sum to 1, got {total}")
        return self


class ModelPromoted(Event):
    """A registered model became the production model for a symbol and timeframe."""

    model_id: Identifier
    model_name: Name
    symbol: Symbol
    timeframe: Timeframe
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    previous_model_id: Identifier | None = None
    promoted_at: UtcDatetime
    promoted_by: str = Field(max_length=128)


class RetrainingTrigger(StrEnum):
    """Why a model should be retrained."""

    FEATURE_DRIFT = "feature_drift"
    PREDICTION_QUALITY = "prediction_quality"
    MODEL_EXPIRED = "model_expired"
    SCHEDULE = "schedule"


class ModelRetrainingRequested(Event):
    """A served model drifted or expired (or its schedule came): the optimizer retrains it.

    Inference publishes it once per model and trigger; the optimizer trains a challenger on
    the latest window, evaluates it walk-forward and shadows it beside the champion.
    """

    model_id: Identifier | None = None
    symbol: Symbol
    timeframe: Timeframe
    trigger: RetrainingTrigger
    """Why a retrain is asked for (drift, or a model past its maximum age)."""
    reason: ShortText
    details: dict[str, str] = Field(default_factory=dict)
    requested_at: UtcDatetime
    requested_by: str = Field(max_length=128)
