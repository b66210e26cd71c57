"""Risk maths: VaR / ES properties, portfolio VaR, correlation groups, Kelly and sizing."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tai_quant import risk

returns_samples = st.lists(
    st.floats(min_value=-0.5, max_value=0.5, allow_nan=False), min_size=1, max_size=200
)
confidences = st.floats(min_value=0.5, max_value=0.999)


@settings(max_examples=200, deadline=None)
@given(returns_samples, confidences)
def test_historical_expected_shortfall_is_at_least_the_var(
    returns: list[float], confidence: float
) -> None:
    estimate = risk.historical_risk(returns, confidence)

    assert estimate.expected_shortfall >= estimate.value_at_risk


@settings(max_examples=200, deadline=None)
@given(returns_samples, confidences, confidences)
def test_var_and_es_never_decrease_with_confidence(
    returns: list[float], first: float, second: float
) -> None:
    low, high = sorted((first, second))

    assert risk.historical_var(returns, low) <= risk.historical_var(returns, high)
    assert risk.historical_expected_shortfall(returns, low) <= (
        risk.historical_expected_shortfall(returns, high) + 1e-12
    )
    assert risk.parametric_var([*returns, 0.01], low) <= (
        risk.parametric_var([*returns, 0.01], high) + 1e-12
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=-1.0, max_value=1.0), min_size=2, max_size=100),
    confidences,
)
def test_parametric_expected_shortfall_is_at_least_the_var(
    returns: list[float], confidence: float
) -> None:
    estimate = risk.parametric_risk(returns, confidence)

    assert estimate.expected_shortfall >= estimate.value_at_risk - 1e-12


@settings(max_examples=200, deadline=None)
@given(returns_samples, confidences)
def test_historical_var_is_minus_the_empirical_quantile(
    returns: list[float], confidence: float
) -> None:
    # The empirical quantile: the smallest sample x with #{X <= x} / n >= 1 - confidence.
    ordered = sorted(returns)
    tail = round(1.0 - confidence, 12)
    quantile = next(
        value
        for position, value in enumerate(ordered, start=1)
        if position >= tail * len(ordered) - 1e-9
    )

    assert risk.historical_var(returns, confidence) == -quantile


def test_historical_var_of_one_to_hundred_losses_picks_the_fifth_worst() -> None:
    # Arrange: returns -1 %, -2 %, ..., -100 %; 5 % of 100 samples are the 5 worst.
    returns = [-(value / 100) for value in range(1, 101)]

    # Act
    estimate = risk.historical_risk(returns, 0.95)

    # Assert
    assert estimate.value_at_risk == pytest.approx(0.96)
    assert estimate.expected_shortfall == pytest.approx((1.0 + 0.99 + 0.98 + 0.97 + 0.96) / 5)


def test_normal_var_and_es_match_the_closed_form() -> None:
    estimate = risk.normal_risk(mean=0.001, std=0.02, confidence=0.99)

    z_score = NormalDist().inv_cdf(0.99)
    assert estimate.value_at_risk == pytest.approx(2.3263478740408408 * 0.02 - 0.001)
    assert estimate.expected_shortfall == pytest.approx(
        0.02 * NormalDist().pdf(z_score) / 0.01 - 0.001
    )


def _two_asset_history(seed: int = 11, size: int = 4_000) -> pd.DataFrame:
    generator = np.random.default_rng(seed)
    covariance = np.array([[0.0004, 0.00018], [0.00018, 0.0009]])
    draws = generator.multivariate_normal([0.0002, 0.0001], covariance, size=size)
    return pd.DataFrame(draws, columns=["EURUSD", "GBPUSD"])


def test_portfolio_var_methods_agree_on_normal_returns() -> None:
    # Arrange
    history = _two_asset_history()
    notionals = {"EURUSD": 100_000.0, "GBPUSD": -50_000.0}

    # Act
    historical = risk.portfolio_risk(history, notionals, 0.99, risk.RiskMethod.HISTORICAL)
    parametric = risk.portfolio_risk(history, notionals, 0.99, risk.RiskMethod.PARAMETRIC)
    simulated = risk.portfolio_risk(
        history,
        notionals,
        0.99,
        risk.RiskMethod.MONTE_CARLO,
        rng=np.random.default_rng(3),
        simulations=200_000,
    )

    # Assert: w' Σ w from the sample covariance sets the parametric answer exactly.
    weights = np.array([100_000.0, -50_000.0])
    sample_std = math.sqrt(weights @ np.cov(history.to_numpy(), rowvar=False) @ weights)
    mean = float(history.to_numpy().mean(axis=0) @ weights)
    assert parametric.value_at_risk == pytest.approx(NormalDist().inv_cdf(0.99) * sample_std - mean)
    assert simulated.value_at_risk == pytest.approx(parametric.value_at_risk, rel=0.02)
    assert simulated.expected_shortfall == pytest.approx(parametric.expected_shortfall, rel=0.02)
    assert historical.value_at_risk == pytest.approx(parametric.value_at_risk, rel=0.1)


def test_monte_carlo_is_reproducible_with_the_same_seed() -> None:
    covariance = np.array([[0.0004, 0.0001], [0.0001, 0.0002]])

    first = risk.monte_carlo_risk(
        [0.0, 0.0], covariance, [1e5, 2e5], rng=np.random.default_rng(42), simulations=10_000
    )
    second = risk.monte_carlo_risk(
        [0.0, 0.0], covariance, [1e5, 2e5], rng=np.random.default_rng(42), simulations=10_000
    )

    assert first == second
    assert first.method is risk.RiskMethod.MONTE_CARLO


def test_portfolio_risk_rejects_positions_without_history() -> None:
    with pytest.raises(ValueError, match="USDJPY"):
        risk.portfolio_risk(_two_asset_history(size=10), {"USDJPY": 1.0})


def test_monte_carlo_portfolio_risk_needs_a_generator() -> None:
    with pytest.raises(ValueError, match="rng"):
        risk.portfolio_risk(
            _two_asset_history(size=10), {"EURUSD": 1.0}, method=risk.RiskMethod.MONTE_CARLO
        )


def test_correlation_groups_link_assets_transitively() -> None:
    # Arrange: A~B and B~C are strong, A~C is weak but C joins through B; D is alone.
    names = ["A", "B", "C", "D"]
    matrix = pd.DataFrame(
        [
            [1.0, 0.9, 0.3, 0.1],
            [0.9, 1.0, -0.8, 0.0],
            [0.3, -0.8, 1.0, 0.2],
            [0.1, 0.0, 0.2, 1.0],
        ],
        index=names,
        columns=names,
    )

    # Act
    groups = risk.correlation_groups(matrix, threshold=0.75)

    # Assert
    assert groups == [("A", "B", "C"), ("D",)]


def test_correlation_groups_from_return_history() -> None:
    generator = np.random.default_rng(1)
    base = generator.normal(size=500)
    returns = pd.DataFrame(
        {
            "EURUSD": base,
            "EURCHF": base + 0.1 * generator.normal(size=500),
            "USDJPY": generator.normal(size=500),
        }
    )

    groups = risk.correlation_groups(returns.corr(), threshold=0.7)

    assert groups == [("EURCHF", "EURUSD"), ("USDJPY",)]


@settings(max_examples=300, deadline=None)
@given(
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.01, max_value=100.0),
    st.floats(min_value=0.01, max_value=1.0),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_kelly_never_exceeds_the_cap_and_is_zero_without_edge(
    win_probability: float, payoff_ratio: float, fraction: float, cap: float
) -> None:
    result = risk.kelly_fraction(win_probability, payoff_ratio, fraction=fraction, cap=cap)

    assert 0.0 <= result <= cap
    if win_probability * payoff_ratio - (1.0 - win_probability) <= 0.0:
        assert result == 0.0


def test_half_kelly_of_a_known_edge() -> None:
    # p = 0.6, b = 1: full Kelly is 0.2, half Kelly 0.1.
    assert risk.kelly_fraction(0.6, 1.0, fraction=0.5, cap=0.25) == pytest.approx(0.1)
    assert risk.kelly_fraction(0.6, 1.0, fraction=1.0, cap=0.15) == pytest.approx(0.15)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=1.0, max_value=1e7),
    st.floats(min_value=1.0, max_value=100.0),
    st.floats(min_value=0.001, max_value=0.1),
    st.floats(min_value=1e-4, max_value=10.0),
)
def test_position_size_scales_linearly_with_equity(
    equity: float, multiple: float, risk_fraction: float, stop_distance: float
) -> None:
    base = risk.position_size(equity, risk_fraction, stop_distance)
    scaled = risk.position_size(equity * multiple, risk_fraction, stop_distance)

    assert scaled == pytest.approx(base * multiple, rel=1e-12)
    # Hitting the stop loses exactly the risked amount.
    assert base * stop_distance == pytest.approx(equity * risk_fraction, rel=1e-12)


def test_position_size_uses_the_value_per_point() -> None:
    # 10,000 equity risking 1 % with a 20-pip stop at 10 per pip per lot: 0.5 lots.
    assert risk.position_size(10_000, 0.01, 20, value_per_point=10.0) == pytest.approx(0.5)


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.1, 1.5])
def test_confidence_outside_the_open_unit_interval_is_rejected(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        risk.historical_var([0.01, -0.02], confidence)
