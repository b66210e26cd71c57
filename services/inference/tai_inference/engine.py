"""The inference domain object: bars in, predictions out (pure, synchronous, no I/O).

Per symbol it keeps the incremental features (O(1) per bar), the regime filter of the served
model and a drift monitor. A model can be swapped between any two bars (hot reload): feature
state is independent of the model, and the new model's regime filter is rebuilt from the last
``REGIME_MEMORY`` regime observations, so the next bar is predicted exactly as if the new model
had always been served over that window.

A model older than ``max_model_age`` (from the newest bar it learnt from to the bar it would
predict) predicts nothing: the outcome says it expired, so the service can alert and ask for
retraining instead of trading stale knowledge (FreqAI's ``expiration_hours``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from tai_events.market import BarClosed, Timeframe
from tai_events.ml import PredictedClass, PredictionMade
from tai_inference.drift import DriftFinding, DriftMonitor, DriftSettings
from tai_inference.model import CLASS_ORDER, ServingModel
from tai_inference.regimes import OBSERVED_FEATURES, RegimeFilter
from tai_quant.features import (
    DEFAULT_FEATURES,
    FeatureBar,
    FeatureSetDefinition,
    IncrementalFeatures,
)

FloatArray = npt.NDArray[np.float64]
REGIME_MEMORY = 500
"""Regime observations kept to re-filter when a new model arrives (a bounded replay)."""


class ServingState(StrEnum):
    """What the service can do for a symbol."""

    NO_MODEL = "no_model"
    WARMING_UP = "warming_up"
    SERVING = "serving"
    EXPIRED = "expired"


@dataclass(frozen=True)
class SymbolStatus:
    """Status of one symbol, for /ready, metrics and logs."""

    symbol: str
    state: ServingState
    bars_seen: int
    warmup_period: int
    model_id: str | None


@dataclass
class BarOutcome:
    """What one bar produced: maybe a prediction, maybe drift findings."""

    prediction: PredictionMade | None
    findings: list[DriftFinding] = field(default_factory=list)
    model: ServingModel | None = None
    expired_by: timedelta | None = None
    """How far past ``max_model_age`` the model is, when it refused to predict."""


class IncompatibleModelError(ValueError):
    """A model was trained on another feature set than the engine computes."""


@dataclass
class _SymbolState:
    features: IncrementalFeatures
    observations: deque[FloatArray]
    model: ServingModel | None = None
    regime_filter: RegimeFilter | None = None
    drift: DriftMonitor | None = None
    expired: bool = False


class InferenceEngine:
    """Turns closed bars into calibrated predictions with the current model of each symbol."""

    def __init__(
        self,
        definition: FeatureSetDefinition = DEFAULT_FEATURES,
        *,
        drift_settings: DriftSettings | None = None,
        producer: str = "inference",
        max_model_age: timedelta | None = None,
    ) -> None:
        self.definition = definition
        self.drift_settings = drift_settings or DriftSettings()
        self.producer = producer
        self.max_model_age = max_model_age
        """None: models never expire."""
        self._states: dict[str, _SymbolState] = {}
        self._observed = [definition.names.index(name) for name in OBSERVED_FEATURES]

    def _state(self, symbol: str) -> _SymbolState:
        state = self._states.get(symbol)
        if state is None:
            state = _SymbolState(
                features=IncrementalFeatures(self.definition),
                observations=deque(maxlen=REGIME_MEMORY),
            )
            self._states[symbol] = state
        return state

    def model(self, symbol: str) -> ServingModel | None:
        """Return the model serving a symbol, or None."""
        state = self._states.get(symbol)
        return state.model if state is not None else None

    def set_model(self, symbol: str, model: ServingModel) -> None:
        """Serve ``model`` for ``symbol`` from the next bar on (hot reload)."""
        if model.feature_set_version != self.definition.version:
            raise IncompatibleModelError(
                f"model {model.model_id} uses feature set {model.feature_set_version}, "
                f"this service computes {self.definition.version}"
            )
        state = self._state(symbol)
        regime_filter = RegimeFilter(model.regime_model)
        for observation in state.observations:
            regime_filter.update(observation)
        state.model, state.regime_filter, state.expired = model, regime_filter, False
        state.drift = DriftMonitor(
            feature_names=model.feature_names,
            psi_reference=model.extras["psi_reference"],
            reference_log_loss=float(model.extras.get("reference_log_loss", 1.1)),
            plan=model.plan,
            settings=self.drift_settings,
        )

    def status(self, symbol: str) -> SymbolStatus:
        """Return what the engine can do for a symbol right now."""
        state = self._states.get(symbol)
        bars = state.features.bars_seen if state is not None else 0
        model = state.model if state is not None else None
        if model is None:
            serving = ServingState.NO_MODEL
        elif state is not None and state.expired:
            serving = ServingState.EXPIRED
        elif state is None or not state.features.ready:
            serving = ServingState.WARMING_UP
        else:
            serving = ServingState.SERVING
        return SymbolStatus(
            symbol=symbol,
            state=serving,
            bars_seen=bars,
            warmup_period=self.definition.warmup_period,
            model_id=model.model_id if model is not None else None,
        )

    def symbols(self) -> list[str]:
        """Return the symbols seen or served so far."""
        return sorted(self._states)

    def bars_seen(self, symbol: str) -> int:
        """Return how many bars of a symbol the features consumed."""
        state = self._states.get(symbol)
        return state.features.bars_seen if state is not None else 0

    def warm_up(self, bar: BarClosed) -> None:
        """Consume a historical bar (state rebuild after a restart) without predicting."""
        self._advance(self._state(bar.symbol), bar)

    def _advance(self, state: _SymbolState, bar: BarClosed) -> FloatArray | None:
        values = state.features.update(
            FeatureBar(bar.opened_at, bar.open, bar.high, bar.low, bar.close, bar.volume)
        )
        if values is None:
            return None
        row = np.asarray(values, dtype=np.float64)
        observation = row[self._observed]
        state.observations.append(observation)
        if state.regime_filter is not None:
            regimes = state.regime_filter.update(observation)
            return np.concatenate([row, regimes])
        return row

    def is_stale(self, bar: BarClosed) -> bool:
        """Tell whether a bar is not newer than the last one consumed (a redelivery)."""
        state = self._states.get(bar.symbol)
        last = state.features.last_opened_at if state is not None else None
        return last is not None and bar.opened_at <= last

    def on_bar(self, bar: BarClosed) -> BarOutcome:
        """Consume one closed bar; predict when a model serves it and features are warm."""
        state = self._state(bar.symbol)
        model = state.model
        row = self._advance(state, bar)
        if row is None or model is None or state.regime_filter is None:
            return BarOutcome(prediction=None, model=model)
        age = self._age_beyond_limit(model, bar)
        state.expired = age is not None
        if age is not None:
            if state.drift is not None:  # keep resolving what it predicted before
                state.drift.observe(
                    high=bar.high, low=bar.low, close=bar.close, row=row, probabilities=None
                )
            return BarOutcome(prediction=None, model=model, expired_by=age)
        regimes = row[-3:]
        prediction = model.predict(row, regimes)
        probabilities = tuple(prediction.probabilities[name] for name in CLASS_ORDER)
        findings: list[DriftFinding] = []
        if state.drift is not None:
            findings = state.drift.observe(
                high=bar.high,
                low=bar.low,
                close=bar.close,
                row=row,
                probabilities=(probabilities[0], probabilities[1], probabilities[2]),
            )
        event = PredictionMade(
            symbol=bar.symbol,
            timeframe=Timeframe(bar.timeframe),
            bar_closed_at=bar.closed_at,
            model_id=model.model_id,
            feature_set_version=model.feature_set_version,
            probabilities={PredictedClass(k): v for k, v in prediction.probabilities.items()},
            predicted_class=PredictedClass(prediction.predicted_class),
            regime=prediction.regime,
            plan=model.plan,
        )
        return BarOutcome(prediction=event, findings=findings, model=model)

    def _age_beyond_limit(self, model: ServingModel, bar: BarClosed) -> timedelta | None:
        """Return how far past the age limit the model is at this bar, or None if within it."""
        if self.max_model_age is None or model.data_end is None:
            return None
        excess = bar.closed_at - model.data_end - self.max_model_age
        return excess if excess > timedelta(0) else None
