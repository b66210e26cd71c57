"""Machine-learning events: predictions and model lifecycle."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from tai_events.base import Event, Identifier, Name, Probability, Symbol, UtcDatetime
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


class PredictionMade(Event):
    """A model produced class probabilities for a closed bar."""

    symbol: Symbol
    timeframe: Timeframe
    bar_closed_at: UtcDatetime
    model_id: Identifier
    feature_set_version: str = Field(max_length=64)
    probabilities: dict[PredictedClass, Probability]
    predicted_class: PredictedClass
    regime: str | None = Field(default=None, max_length=32)

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
