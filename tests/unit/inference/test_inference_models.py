"""Stacked ensembles and per-regime models: native bundles, baselines, serving parity, plans."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tai_events.market import BarClosed, Timeframe
from tai_events.ml import TradePlan
from tai_inference.engine import InferenceEngine
from tai_inference.model import RegimeRouted, ServingModel, StackedEnsemble
from tai_inference.regimes import OBSERVED_FEATURES, REGIMES, filtered_regime_probabilities
from tai_inference.training import TrainingResult, barrier_of, train_model
from tai_quant.features import compute_features, feature_bars, triple_barrier_labels
from tai_store.ml_repository import ArtifactIntegrityError, bundle_components
from tests.unit.inference.conftest import FAST, TRAINED_AT

PICKLE_PROTOCOL_MARKER = b"\x80"


def _events(bars: pd.DataFrame) -> list[BarClosed]:
    return [
        BarClosed(
            symbol="EURUSD",
            timeframe=Timeframe.H1,
            opened_at=bar.opened_at,
            closed_at=bar.opened_at + Timeframe.H1.duration,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            source="test",
        )
        for bar in feature_bars(bars)
    ]


def test_ensemble_is_one_bundle_of_native_xgboost_and_lightgbm_with_a_meta_learner(
    ensemble_model: TrainingResult,
) -> None:
    # Act
    record = ensemble_model.record
    composition, components = bundle_components(record.verified_artifact())
    # Assert: JSON text throughout, each booster in its own format, no pickle anywhere
    assert record.artifact_format == "bundle-json"
    assert record.algorithm == "ensemble"
    assert not record.artifact.startswith(PICKLE_PROTOCOL_MARKER)
    assert {name: fmt for name, (fmt, _) in components.items()} == {
        "xgboost": "xgboost-json",
        "lightgbm": "lightgbm-text",
    }
    assert json.loads(components["xgboost"][1])["learner"]
    assert components["lightgbm"][1].startswith(b"tree\n")
    assert composition["kind"] == "stack"
    assert np.asarray(composition["meta"]["coefficients"]).shape == (3, 6)
    assert isinstance(ServingModel.from_record(record).predictor, StackedEnsemble)


def test_ensemble_reports_its_metrics_beside_the_single_model_and_class_prior(
    ensemble_model: TrainingResult,
) -> None:
    metrics = ensemble_model.metrics
    baselines = metrics["baselines"]
    for section in (
        metrics["walk_forward"],
        metrics["validation"],
        baselines["single_model"]["walk_forward"],
        baselines["single_model"]["validation"],
        baselines["class_prior"]["walk_forward"],
        baselines["class_prior"]["validation"],
    ):
        assert 0.0 < section["log_loss"] < 5.0
        assert {"trades", "sharpe", "hit_rate_pct"} <= set(section["trading"])
    # every column scores the very same samples
    samples = {metrics["walk_forward"]["samples"]}
    samples.add(baselines["single_model"]["walk_forward"]["samples"])
    samples.add(baselines["class_prior"]["walk_forward"]["samples"])
    assert len(samples) == 1
    assert baselines["single_model"]["algorithm"] == "xgboost"


def test_per_regime_model_trains_one_model_per_regime_with_a_fallback(
    per_regime_model: TrainingResult,
) -> None:
    record = per_regime_model.record
    composition, components = bundle_components(record.verified_artifact())
    assert record.algorithm == "per_regime_xgboost"
    assert composition["kind"] == "per_regime"
    assert composition["fallback"]["component"] == "all/xgboost"
    own = set(composition["regimes"])
    assert own, "no regime had enough samples for its own model"
    assert {f"{name}/xgboost" for name in own} | {"all/xgboost"} == set(components)
    assert per_regime_model.metrics["regime_models"] == {
        name: "own" if name in own else "fallback" for name in REGIMES
    }
    assert "single_model" in per_regime_model.metrics["baselines"]
    assert isinstance(ServingModel.from_record(record).predictor, RegimeRouted)


@pytest.mark.parametrize("fixture", ["ensemble_model", "per_regime_model"])
def test_served_predictions_equal_the_training_pipelines_on_the_same_bars(
    fixture: str, request: pytest.FixtureRequest, eurusd_bars: pd.DataFrame
) -> None:
    # Arrange: the live engine, bar by bar, after the training window
    result: TrainingResult = request.getfixturevalue(fixture)
    model = ServingModel.from_record(result.record)
    model.regime_policy = dict.fromkeys(REGIMES, "model")  # compare the model, not the prior
    bars = eurusd_bars.iloc[2400:2900]
    engine = InferenceEngine()
    engine.set_model("EURUSD", model)

    # Act
    served = [outcome.prediction for outcome in map(engine.on_bar, _events(bars))]

    # Assert
    features = compute_features(bars)
    first = int(np.argmax(~features.isna().any(axis=1).to_numpy()))
    observed = features.loc[:, list(OBSERVED_FEATURES)].to_numpy()[first:]
    regimes = filtered_regime_probabilities(model.regime_model, observed)
    batch = model.calibrated(np.hstack([features.to_numpy()[first:], regimes]))
    live = np.array(
        [[p.probabilities[name] for name in ("SHORT", "NEUTRAL", "LONG")] for p in served[first:]]
    )
    np.testing.assert_allclose(live, batch, atol=1e-9)


def test_a_tampered_bundle_component_is_refused(ensemble_model: TrainingResult) -> None:
    # Arrange: change one tree inside the bundle and re-hash the bundle (not the component)
    record = ensemble_model.record
    document = json.loads(record.artifact)
    text = document["components"]["lightgbm"]["content"]
    document["components"]["lightgbm"]["content"] = text.replace("leaf_value=", "leaf_value=1", 1)
    forged = replace(record, artifact=json.dumps(document).encode(), artifact_sha256="")
    # Act / Assert
    with pytest.raises(ArtifactIntegrityError, match="lightgbm"):
        ServingModel.from_record(forged)


def test_the_plan_drives_the_labels_and_travels_from_registry_to_prediction(
    training_bars: pd.DataFrame, eurusd_bars: pd.DataFrame
) -> None:
    # Arrange: a plan far from the default one
    plan = TradePlan(
        take_profit_atr=1.0, stop_loss_atr=3.0, max_horizon_bars=8, probability_threshold=0.4
    )
    # Act
    result = train_model(training_bars, replace(FAST, plan=plan), created_at=TRAINED_AT)
    model = ServingModel.from_record(result.record)
    engine = InferenceEngine()
    engine.set_model("EURUSD", model)
    outcomes = [engine.on_bar(bar) for bar in _events(eurusd_bars.iloc[2500:2700])]
    # Assert: the class counts are the plan's labels; every prediction names the plan
    labels = triple_barrier_labels(training_bars, barrier_of(plan))["label"]
    counts = result.metrics["class_counts"]
    assert counts["LONG"] <= int((labels == 2).sum())
    assert counts["LONG"] / sum(counts.values()) == pytest.approx(
        float((labels == 2).mean()), abs=0.02
    )
    assert result.record.trade_plan() == plan
    assert result.metrics["trade_plan"] == plan.model_dump()
    predictions = [outcome.prediction for outcome in outcomes if outcome.prediction is not None]
    assert predictions
    assert {prediction.plan for prediction in predictions} == {plan}


def test_a_model_registered_before_plans_existed_serves_the_plan_it_was_trained_for(
    training_bars: pd.DataFrame,
) -> None:
    # Arrange: the record of an older model: barrier and threshold only
    record = train_model(training_bars, FAST, created_at=TRAINED_AT).record
    extras = {key: value for key, value in record.extras.items() if key != "trade_plan"}
    extras["barrier"] = {"take_profit": 2.0, "stop_loss": 2.0, "max_horizon": 12}
    older = replace(record, extras=extras, parameters={"signal_threshold": 0.45})
    # Act
    plan = ServingModel.from_record(older).plan
    # Assert
    assert plan == TradePlan(
        take_profit_atr=2.0, stop_loss_atr=2.0, max_horizon_bars=12, probability_threshold=0.45
    )
