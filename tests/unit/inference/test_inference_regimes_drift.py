"""Regimes (HMM fit, deterministic mapping, causal filter) and drift (PSI, prediction quality)."""

from __future__ import annotations

import numpy as np
import pytest

from tai_events.ml import TradePlan
from tai_inference.drift import DriftMonitor, DriftSettings, population_stability_index
from tai_inference.regimes import (
    REGIMES,
    RegimeFilter,
    RegimeModel,
    filtered_regime_probabilities,
    fit_regime_model,
)


def _three_regimes(seed: int = 1) -> np.ndarray:
    """Calm drifting up, calm flat, and wild: 400 rows of (return, volatility) each."""
    generator = np.random.default_rng(seed)
    trend = np.column_stack(
        [generator.normal(0.004, 0.0005, 400), generator.normal(0.001, 0.0001, 400)]
    )
    flat = np.column_stack(
        [generator.normal(0.0, 0.0005, 400), generator.normal(0.001, 0.0001, 400)]
    )
    wild = np.column_stack(
        [generator.normal(0.0, 0.003, 400), generator.normal(0.005, 0.0005, 400)]
    )
    return np.vstack([trend, flat, wild, trend, flat])


def test_hmm_states_map_to_trend_range_and_volatile_deterministically() -> None:
    # Act
    model = fit_regime_model(_three_regimes())
    again = fit_regime_model(_three_regimes())

    # Assert: volatile has the highest volatility, trend the largest |mean return|
    means = np.asarray(model.means)
    assert np.argmax(means[:, 1]) == REGIMES.index("volatile")
    assert abs(means[0, 0]) > abs(means[1, 0])
    assert model == again
    probabilities = filtered_regime_probabilities(model, _three_regimes())
    labels = probabilities.argmax(axis=1)
    assert np.mean(labels[50:400] == REGIMES.index("trend")) > 0.9
    assert np.mean(labels[450:800] == REGIMES.index("range")) > 0.9
    assert np.mean(labels[850:1200] == REGIMES.index("volatile")) > 0.9


def test_regime_filter_is_causal_and_matches_the_batch_filter() -> None:
    model = fit_regime_model(_three_regimes())
    observations = _three_regimes(seed=5)
    batch = filtered_regime_probabilities(model, observations)
    shuffled = observations.copy()
    shuffled[700:] = shuffled[700:][::-1]
    streamed = RegimeFilter(model)
    rows = np.array([streamed.update(row) for row in shuffled])
    np.testing.assert_array_equal(rows[:700], batch[:700])
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)


def test_regime_model_round_trips_through_json() -> None:
    model = fit_regime_model(_three_regimes())
    assert RegimeModel.from_json(model.to_json()) == model


def test_psi_is_zero_for_the_reference_distribution_and_large_for_a_shift() -> None:
    generator = np.random.default_rng(0)
    reference = generator.normal(size=20_000)
    edges = np.quantile(reference, np.linspace(0, 1, 11)[1:-1])
    expected = np.full(10, 0.1)
    same = population_stability_index(edges, expected, generator.normal(size=5_000))
    shifted = population_stability_index(edges, expected, generator.normal(1.0, 1.0, 5_000))
    assert same < 0.01
    assert shifted > 0.25


def _monitor(settings: DriftSettings) -> DriftMonitor:
    edges = [float(x) for x in np.quantile(np.random.default_rng(0).normal(size=5000), [0.5])]
    return DriftMonitor(
        feature_names=["atr_ratio", "x"],
        psi_reference={
            "atr_ratio": {"edges": [0.001], "proportions": [0.5, 0.5]},
            "x": {"edges": edges, "proportions": [0.5, 0.5]},
        },
        reference_log_loss=1.0,
        plan=TradePlan(
            take_profit_atr=1.0,
            stop_loss_atr=1.0,
            max_horizon_bars=3,
            probability_threshold=0.5,
            atr_period=2,
        ),
        settings=settings,
    )


def test_feature_drift_is_reported_once() -> None:
    monitor = _monitor(DriftSettings(window=50, check_every=10, quality_window=20))
    findings = []
    for _ in range(200):
        row = np.array([0.0005, 5.0])  # every live value in one bin of each feature
        findings += monitor.observe(high=1.0, low=1.0, close=1.0, row=row, probabilities=None)
    assert [finding.code for finding in findings] == ["feature_drift"]
    assert "x" in findings[0].details


def test_confidently_wrong_predictions_flag_prediction_quality() -> None:
    # Every bar rises through the take-profit barrier, yet the model says SHORT at 98 %.
    monitor = _monitor(DriftSettings(window=1000, check_every=1000, quality_window=20))
    findings = []
    close = 1.0
    for _ in range(60):
        close *= 1.01
        row = np.array([0.001, 0.0])
        findings += monitor.observe(
            high=close * 1.01, low=close, close=close, row=row, probabilities=(0.98, 0.01, 0.01)
        )
    assert [finding.code for finding in findings] == ["prediction_quality"]
    assert monitor.rolling_log_loss == pytest.approx(-np.log(0.01))


def test_well_calibrated_predictions_do_not_flag_quality() -> None:
    monitor = _monitor(DriftSettings(window=1000, check_every=1000, quality_window=20))
    findings = []
    close = 1.0
    for _ in range(60):
        close *= 1.01
        findings += monitor.observe(
            high=close * 1.01,
            low=close,
            close=close,
            row=np.array([0.001, 0.0]),
            probabilities=(0.05, 0.05, 0.9),
        )
    assert findings == []
