"""A registered model loaded for serving: native boosters, how they combine, regimes, policy.

Artifacts are loaded from their native formats (XGBoost UBJ/JSON, LightGBM text) only after
their SHA-256 matched the registry's, and never through pickle. A model is a *composition*
(plain JSON) of boosters:

* ``booster``: one booster and its multinomial calibration;
* ``stack``: base boosters whose raw probabilities a multinomial logistic meta-learner (fitted
  on purged out-of-fold predictions) turns into the calibrated probabilities;
* ``per_regime``: one composition per HMM regime, the row's most probable regime choosing
  (its regime probabilities are the last three features), a fallback for regimes trained
  without enough samples.

Training builds its predictions with :func:`build_predictor` too, so the probabilities a
model was validated on are the ones it serves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tai_events.ml import TradePlan
from tai_inference.regimes import REGIMES, RegimeModel
from tai_store.ml_repository import ModelRecord, bundle_components

FloatArray = npt.NDArray[np.float64]

CLASS_ORDER = ("SHORT", "NEUTRAL", "LONG")
"""Class index -> PredictedClass name (the triple-barrier Label order)."""


class NativeClassifier(Protocol):
    """A booster that returns class probabilities in ``CLASS_ORDER``."""

    def probabilities(self, features: FloatArray) -> FloatArray:
        """Return an (n, 3) array of raw class probabilities for (n, features) rows."""
        ...


class XGBoostClassifier:
    """An XGBoost multi-class booster loaded from UBJ (or JSON) bytes."""

    def __init__(self, artifact: bytes) -> None:
        import xgboost  # noqa: PLC0415  (heavy import, only when a model is served)

        self._booster = xgboost.Booster()
        self._booster.load_model(bytearray(artifact))
        # One row per call: a thread pool costs more than it saves (and spins on busy hosts).
        self._booster.set_param({"nthread": 1})

    @property
    def booster(self) -> Any:
        """The underlying ``xgboost.Booster``."""
        return self._booster

    def probabilities(self, features: FloatArray) -> FloatArray:
        """Return the booster's softmax probabilities."""
        return np.asarray(self._booster.inplace_predict(features), dtype=np.float64).reshape(
            features.shape[0], len(CLASS_ORDER)
        )


class LightGBMClassifier:
    """A LightGBM multi-class booster loaded from its text format."""

    def __init__(self, artifact: bytes) -> None:
        import lightgbm  # noqa: PLC0415

        self._booster = lightgbm.Booster(model_str=artifact.decode("utf-8"))

    @property
    def booster(self) -> Any:
        """The underlying ``lightgbm.Booster``."""
        return self._booster

    def probabilities(self, features: FloatArray) -> FloatArray:
        """Return the booster's softmax probabilities."""
        predicted = self._booster.predict(features, num_threads=1)
        return np.asarray(predicted, dtype=np.float64).reshape(features.shape[0], len(CLASS_ORDER))


@dataclass(frozen=True)
class FunctionClassifier:
    """A classifier from a function (the in-memory boosters of a training run)."""

    function: Callable[[FloatArray], FloatArray]

    def probabilities(self, features: FloatArray) -> FloatArray:
        """Return the function's probabilities."""
        return self.function(features)


def load_classifier(artifact_format: str, artifact: bytes) -> NativeClassifier:
    """Load a booster from verified bytes in a native format."""
    if artifact_format in ("xgboost-ubj", "xgboost-json"):
        return XGBoostClassifier(artifact)
    if artifact_format == "lightgbm-text":
        return LightGBMClassifier(artifact)
    raise ValueError(f"unsupported artifact format {artifact_format!r}")


@dataclass(frozen=True)
class Calibration:
    """Multinomial logistic calibration on log-probabilities (fitted with scikit-learn)."""

    coefficients: tuple[tuple[float, ...], ...]
    intercepts: tuple[float, ...]

    def apply(self, raw: FloatArray) -> FloatArray:
        """Return calibrated probabilities for raw (n, 3) probabilities."""
        logits = np.log(np.clip(raw, 1e-9, 1.0)) @ np.asarray(self.coefficients).T + np.asarray(
            self.intercepts
        )
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return np.asarray(weights / weights.sum(axis=1, keepdims=True), dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        """Return the calibration as plain JSON data."""
        return {
            "coefficients": [list(row) for row in self.coefficients],
            "intercepts": list(self.intercepts),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        """Rebuild a calibration from :meth:`to_json` output."""
        return cls(
            coefficients=tuple(tuple(float(x) for x in row) for row in data["coefficients"]),
            intercepts=tuple(float(x) for x in data["intercepts"]),
        )


class Predictor(Protocol):
    """Rows of features (regime probabilities last) in, calibrated probabilities out."""

    def probabilities(self, rows: FloatArray) -> FloatArray:
        """Return an (n, 3) array of calibrated class probabilities."""
        ...


@dataclass(frozen=True)
class CalibratedBooster:
    """One booster and its calibration."""

    classifier: NativeClassifier
    calibration: Calibration

    def probabilities(self, rows: FloatArray) -> FloatArray:
        """Return the calibrated probabilities of the booster."""
        return self.calibration.apply(self.classifier.probabilities(rows))


@dataclass(frozen=True)
class StackedEnsemble:
    """Base boosters combined by a multinomial logistic meta-learner on their log-probabilities."""

    bases: tuple[NativeClassifier, ...]
    meta: Calibration

    def probabilities(self, rows: FloatArray) -> FloatArray:
        """Return the meta-learner's probabilities over the bases' raw probabilities."""
        raw = np.hstack([base.probabilities(rows) for base in self.bases])
        return self.meta.apply(raw)


@dataclass(frozen=True)
class RegimeRouted:
    """One predictor per regime, chosen row by row by the most probable regime."""

    by_regime: tuple[Predictor, ...]
    """Indexed like ``REGIMES``."""

    def probabilities(self, rows: FloatArray) -> FloatArray:
        """Return each row's probabilities from its regime's predictor."""
        regimes = np.argmax(rows[:, -len(REGIMES) :], axis=1)
        result = np.empty((rows.shape[0], len(CLASS_ORDER)), dtype=np.float64)
        for index, predictor in enumerate(self.by_regime):
            chosen = regimes == index
            if chosen.any():
                result[chosen] = predictor.probabilities(rows[chosen])
        return result


def build_predictor(
    composition: Mapping[str, Any], classifiers: Mapping[str, NativeClassifier]
) -> Predictor:
    """Return the predictor a composition describes over named classifiers."""
    kind = composition.get("kind")
    if kind == "booster":
        return CalibratedBooster(
            classifiers[str(composition["component"])],
            Calibration.from_json(composition["calibration"]),
        )
    if kind == "stack":
        return StackedEnsemble(
            tuple(classifiers[str(name)] for name in composition["components"]),
            Calibration.from_json(composition["meta"]),
        )
    if kind == "per_regime":
        fallback = build_predictor(composition["fallback"], classifiers)
        regimes = composition.get("regimes", {})
        return RegimeRouted(
            tuple(
                build_predictor(regimes[name], classifiers) if name in regimes else fallback
                for name in REGIMES
            )
        )
    raise ValueError(f"unknown model composition {kind!r}")


def composition_components(composition: Mapping[str, Any]) -> list[str]:
    """Return the names of the classifiers a composition uses, in first-use order."""
    kind = composition.get("kind")
    if kind == "booster":
        return [str(composition["component"])]
    if kind == "stack":
        return [str(name) for name in composition["components"]]
    names = composition_components(composition["fallback"])
    for part in composition.get("regimes", {}).values():
        names += [name for name in composition_components(part) if name not in names]
    return names


@dataclass(frozen=True)
class Prediction:
    """Calibrated class probabilities of one bar and the regime they were made in."""

    probabilities: dict[str, float]
    predicted_class: str
    regime: str
    source: str
    """``model`` or ``prior`` (the regime policy chose the class prior over the model)."""


class ServingModel:
    """Everything needed to turn a feature vector into a calibrated prediction."""

    def __init__(
        self,
        *,
        model_id: str,
        algorithm: str,
        feature_set_version: str,
        feature_names: list[str],
        predictor: Predictor,
        regime_model: RegimeModel,
        regime_policy: dict[str, str],
        class_prior: tuple[float, float, float],
        plan: TradePlan,
        extras: dict[str, Any] | None = None,
        data_end: datetime | None = None,
    ) -> None:
        self.model_id = model_id
        self.algorithm = algorithm
        self.feature_set_version = feature_set_version
        self.feature_names = feature_names
        self.predictor = predictor
        self.regime_model = regime_model
        self.regime_policy = regime_policy
        self.class_prior = class_prior
        self.plan = plan
        self.extras = extras or {}
        self.data_end = data_end
        """Opening time of the newest bar the model learnt from (None: unknown)."""

    @classmethod
    def from_record(cls, record: ModelRecord) -> ServingModel:
        """Load a registered model, verifying its artifact's (and components') SHA-256 first."""
        artifact = record.verified_artifact()
        extras = record.extras
        prior = tuple(float(x) for x in extras["class_prior"])
        if record.artifact_format == "bundle-json":
            composition, components = bundle_components(artifact)
            classifiers = {
                name: load_classifier(artifact_format, content)
                for name, (artifact_format, content) in components.items()
            }
        else:
            composition = {
                "kind": "booster",
                "component": "model",
                "calibration": extras["calibration"],
            }
            classifiers = {"model": load_classifier(record.artifact_format, artifact)}
        return cls(
            model_id=record.model_id,
            algorithm=record.algorithm,
            feature_set_version=record.feature_set_version,
            feature_names=list(record.feature_names),
            predictor=build_predictor(composition, classifiers),
            regime_model=RegimeModel.from_json(extras["regime_model"]),
            regime_policy={str(k): str(v) for k, v in extras["regime_policy"].items()},
            class_prior=(prior[0], prior[1], prior[2]),
            plan=record.trade_plan(),
            extras=dict(extras),
            data_end=record.data_end,
        )

    def calibrated(self, rows: FloatArray) -> FloatArray:
        """Return calibrated probabilities of (n, features) rows."""
        return self.predictor.probabilities(rows)

    def predict(self, row: FloatArray, regime_probabilities: FloatArray) -> Prediction:
        """Predict one bar: the model's calibrated probabilities, or the prior in its regime."""
        regime = REGIMES[int(np.argmax(regime_probabilities))]
        if self.regime_policy.get(regime, "model") == "prior":
            probabilities = np.asarray(self.class_prior, dtype=np.float64)
            source = "prior"
        else:
            probabilities = self.calibrated(row.reshape(1, -1))[0]
            source = "model"
        total = float(probabilities.sum())
        values = {
            name: float(p) / total for name, p in zip(CLASS_ORDER, probabilities, strict=True)
        }
        predicted = CLASS_ORDER[int(np.argmax(probabilities))]
        return Prediction(values, predicted, regime, source)
