"""A registered model loaded for serving: native booster, calibration, regimes, policy.

Artifacts are loaded from their native formats (XGBoost UBJ, LightGBM text) only after their
SHA-256 matched the registry's, and never through pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tai_inference.regimes import REGIMES, RegimeModel
from tai_store.ml_repository import ModelRecord

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
        classifier: NativeClassifier,
        calibration: Calibration,
        regime_model: RegimeModel,
        regime_policy: dict[str, str],
        class_prior: tuple[float, float, float],
        extras: dict[str, Any] | None = None,
    ) -> None:
        self.model_id = model_id
        self.algorithm = algorithm
        self.feature_set_version = feature_set_version
        self.feature_names = feature_names
        self.classifier = classifier
        self.calibration = calibration
        self.regime_model = regime_model
        self.regime_policy = regime_policy
        self.class_prior = class_prior
        self.extras = extras or {}

    @classmethod
    def from_record(cls, record: ModelRecord) -> ServingModel:
        """Load a registered model, verifying its artifact's SHA-256 first."""
        artifact = record.verified_artifact()
        extras = record.extras
        prior = tuple(float(x) for x in extras["class_prior"])
        return cls(
            model_id=record.model_id,
            algorithm=record.algorithm,
            feature_set_version=record.feature_set_version,
            feature_names=list(record.feature_names),
            classifier=load_classifier(record.artifact_format, artifact),
            calibration=Calibration.from_json(extras["calibration"]),
            regime_model=RegimeModel.from_json(extras["regime_model"]),
            regime_policy={str(k): str(v) for k, v in extras["regime_policy"].items()},
            class_prior=(prior[0], prior[1], prior[2]),
            extras=dict(extras),
        )

    def calibrated(self, rows: FloatArray) -> FloatArray:
        """Return calibrated probabilities of (n, features) rows."""
        return self.calibration.apply(self.classifier.probabilities(rows))

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
