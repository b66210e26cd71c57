"""The inference service's Prometheus metrics (on the service's own registry)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREDICTION_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
)
SERVING_STATE_VALUES = {"no_model": 0, "warming_up": 1, "serving": 2, "expired": 3}


@dataclass(frozen=True)
class InferenceMetrics:
    """Model version, prediction latency and counts, serving state, drift and reloads."""

    model_version: Gauge
    prediction_latency: Histogram
    predictions: Counter
    serving_state: Gauge
    drift_alerts: Counter
    reloads: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> InferenceMetrics:
        """Register the metrics in a registry."""
        return cls(
            model_version=Gauge(
                "tai_model_version_info",
                "The model serving a symbol (1 for the current model)",
                ["symbol", "model_id", "algorithm", "feature_set_version"],
                registry=registry,
            ),
            prediction_latency=Histogram(
                "tai_prediction_latency_seconds",
                "Time from a bar to its prediction (features, regime, model, calibration)",
                ["symbol"],
                buckets=PREDICTION_LATENCY_BUCKETS,
                registry=registry,
            ),
            predictions=Counter(
                "tai_predictions",
                "Predictions published",
                ["symbol", "predicted_class"],
                registry=registry,
            ),
            serving_state=Gauge(
                "tai_inference_serving_state",
                "0 no model, 1 warming up, 2 serving, 3 model expired (no predictions)",
                ["symbol"],
                registry=registry,
            ),
            drift_alerts=Counter(
                "tai_model_drift_alerts",
                "Drift thresholds crossed (the model is marked for retraining)",
                ["symbol", "code"],
                registry=registry,
            ),
            reloads=Counter(
                "tai_model_reloads",
                "Model (re)loads by outcome",
                ["symbol", "outcome"],
                registry=registry,
            ),
        )
