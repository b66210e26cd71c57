"""Training: native artifacts, metrics, importances, calibration, and train/serve parity."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tai_events.market import BarClosed, Timeframe
from tai_events.ml import PredictedClass
from tai_inference.engine import InferenceEngine
from tai_inference.model import CLASS_ORDER, ServingModel
from tai_inference.regimes import (
    OBSERVED_FEATURES,
    REGIME_FEATURES,
    REGIMES,
    filtered_regime_probabilities,
)
from tai_inference.training import (
    TrainingOptions,
    TrainingResult,
    barrier_of,
    plan_trading_result,
    train_model,
)
from tai_quant.features import DEFAULT_FEATURES, compute_features, triple_barrier_labels
from tai_store.ml_repository import ArtifactIntegrityError, sha256_hex
from tests.unit.inference.conftest import FAST, TRAINED_AT

PICKLE_PROTOCOL_MARKER = b"\x80"


def _bar_events(bars: pd.DataFrame) -> list[BarClosed]:
    return [
        BarClosed(
            symbol="EURUSD",
            timeframe=Timeframe.H1,
            opened_at=timestamp.to_pydatetime(),
            closed_at=(timestamp + pd.Timedelta(hours=1)).to_pydatetime(),
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=row.volume,
            source="test",
        )
        for timestamp, row in zip(bars.index, bars.itertuples(index=False), strict=True)
    ]


def test_xgboost_model_is_stored_as_ubj_with_its_sha256(xgboost_model: TrainingResult) -> None:
    record = xgboost_model.record
    assert record.artifact_format == "xgboost-ubj"
    assert record.artifact_sha256 == sha256_hex(record.artifact)
    assert record.artifact[:1] == b"{"  # UBJSON object, not a pickle stream
    assert not record.artifact.startswith(PICKLE_PROTOCOL_MARKER)


def test_lightgbm_model_is_stored_as_lightgbm_text(
    evaluated_lightgbm_model: TrainingResult,
) -> None:
    record = evaluated_lightgbm_model.record
    assert record.artifact_format == "lightgbm-text"
    assert record.artifact.decode("utf-8").startswith("tree\n")


def test_model_metadata_lists_features_window_data_hash_and_parameters(
    xgboost_model: TrainingResult, training_bars: pd.DataFrame
) -> None:
    record = xgboost_model.record
    assert record.feature_names == [*DEFAULT_FEATURES.names, *REGIME_FEATURES]
    assert record.feature_set_version == DEFAULT_FEATURES.version
    assert training_bars.index[0] <= record.training_start < record.training_end
    assert record.training_end < training_bars.index[-1]
    assert len(record.data_sha256) == 64
    assert record.parameters["algorithm"] == "xgboost"
    assert record.parameters["trade_plan"]["max_horizon_bars"] == FAST.plan.max_horizon_bars


def test_importances_come_from_pred_contribs_and_cover_every_feature(
    xgboost_model: TrainingResult, evaluated_lightgbm_model: TrainingResult
) -> None:
    for result in (xgboost_model, evaluated_lightgbm_model):
        importances = result.record.importances
        assert list(importances) == result.record.feature_names
        assert math.isclose(sum(importances.values()), 1.0)
        assert all(value >= 0.0 for value in importances.values())
        assert max(importances.values()) > 1.0 / len(importances)


def test_walk_forward_metrics_report_log_loss_balanced_accuracy_f1_and_trading(
    evaluated_lightgbm_model: TrainingResult,
) -> None:
    metrics = evaluated_lightgbm_model.metrics
    walk_forward = metrics["walk_forward"]
    assert 0.0 < walk_forward["log_loss"] < 5.0
    assert 0.0 <= walk_forward["balanced_accuracy"] <= 1.0
    assert set(walk_forward["f1"]) == set(CLASS_ORDER)
    assert {"total_return_pct", "sharpe", "max_drawdown_pct", "hit_rate_pct"} <= set(
        walk_forward["trading"]
    )
    assert set(metrics["per_regime"]) <= set(REGIMES)
    assert set(evaluated_lightgbm_model.record.extras["regime_policy"]) == set(REGIMES)
    assert metrics["reference_log_loss"] == walk_forward["log_loss"]


def test_training_is_deterministic(
    xgboost_model: TrainingResult, training_bars: pd.DataFrame
) -> None:
    again = train_model(training_bars, FAST, created_at=TRAINED_AT)
    assert again.record.artifact_sha256 == xgboost_model.record.artifact_sha256
    assert again.record.model_id == xgboost_model.record.model_id


def test_tampered_artifact_is_refused_on_load(xgboost_model: TrainingResult) -> None:
    record = xgboost_model.record
    flipped = bytes([record.artifact[100] ^ 0x01])
    tampered = replace(record, artifact=record.artifact[:100] + flipped + record.artifact[101:])
    assert tampered.artifact_sha256 == record.artifact_sha256
    with pytest.raises(ArtifactIntegrityError):
        ServingModel.from_record(tampered)


def test_calibrated_probabilities_are_distributions(xgboost_model: TrainingResult) -> None:
    model = ServingModel.from_record(xgboost_model.record)
    rows = np.random.default_rng(3).normal(size=(20, len(model.feature_names))) * 0.01
    probabilities = model.calibrated(rows)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert (probabilities > 0.0).all()


def test_live_predictions_equal_batch_predictions_on_the_same_bars(
    xgboost_model: TrainingResult, eurusd_bars: pd.DataFrame
) -> None:
    # Arrange: bars after the training window, served bar by bar like the live service
    model = ServingModel.from_record(xgboost_model.record)
    bars = eurusd_bars.iloc[2400:3000]
    engine = InferenceEngine()
    engine.set_model("EURUSD", model)

    # Act
    live = [engine.on_bar(bar).prediction for bar in _bar_events(bars)]

    # Assert: the batch pipeline (training code path) gives the same probabilities
    features = compute_features(bars)
    complete = ~features.isna().any(axis=1).to_numpy()
    first = int(np.argmax(complete))
    observed = features.loc[:, list(OBSERVED_FEATURES)].to_numpy()[first:]
    regimes = filtered_regime_probabilities(model.regime_model, observed)
    design = np.hstack([features.to_numpy()[first:], regimes])
    assert all(prediction is None for prediction in live[:first])
    served = [prediction for prediction in live[first:] if prediction is not None]
    assert len(served) == len(bars) - first
    batch = model.calibrated(design)
    for row, prediction in enumerate(served):
        regime = REGIMES[int(np.argmax(regimes[row]))]
        assert prediction.regime == regime
        if model.regime_policy[regime] == "prior":
            expected = np.asarray(model.class_prior) / sum(model.class_prior)
        else:
            expected = batch[row]
        actual = [prediction.probabilities[PredictedClass(name)] for name in CLASS_ORDER]
        np.testing.assert_allclose(actual, expected, atol=1e-9)


def test_plan_trading_of_perfect_foresight_wins_every_trade(training_bars: pd.DataFrame) -> None:
    # Arrange: predictions that know each bar's label, at 90 %
    plan = FAST.plan
    labels = triple_barrier_labels(training_bars, barrier_of(plan))
    positions = labels["start_position"].to_numpy(np.int64)
    probabilities = np.full((positions.size, 3), 0.05)
    probabilities[np.arange(positions.size), labels["label"].to_numpy()] = 0.9

    # Act
    result, returns = plan_trading_result(
        training_bars, positions, probabilities, plan, commission=0.0, bars_per_year=6240
    )

    # Assert: each trade is a LONG or SHORT the label says wins, so it reaches its target
    assert result["trades"] > 10
    assert result["hit_rate_pct"] == 100.0
    assert result["total_return_pct"] > 0
    assert returns.size > 0


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        TrainingOptions(algorithm="catboost")  # type: ignore[arg-type]
