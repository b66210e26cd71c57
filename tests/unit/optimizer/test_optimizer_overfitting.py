"""Deflated Sharpe ratio and CSCV probability of backtest overfitting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_optimizer.overfitting import (
    deflated_sharpe_ratio,
    expected_maximum_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sample_moments,
)


def test_expected_maximum_sharpe_matches_the_simulated_best_of_many_skill_less_trials() -> None:
    # Arrange: 200 trials whose Sharpe ratios are N(0, 0.1^2) draws
    generator = np.random.default_rng(3)
    draws = generator.normal(0.0, 0.1, size=(20_000, 200)).max(axis=1)

    # Act
    expected = expected_maximum_sharpe(0.1**2, 200)

    # Assert: the closed form (Bailey & Lopez de Prado) is within 2 % of the simulation
    assert expected == pytest.approx(float(draws.mean()), rel=0.02)


def test_a_single_trial_is_not_deflated() -> None:
    returns = np.random.default_rng(1).normal(0.001, 0.01, 500)
    skewness, kurtosis = sample_moments(returns)

    deflated = deflated_sharpe_ratio(returns, np.array([0.1]))

    assert deflated.benchmark_sharpe == 0.0
    assert deflated.probability == pytest.approx(
        probabilistic_sharpe_ratio(deflated.sharpe, 0.0, 500, skewness, kurtosis)
    )


def test_probabilistic_sharpe_ratio_matches_a_hand_computed_value() -> None:
    # SR 0.1 per period over 101 observations, normal returns: z = 0.1 * 10 / sqrt(1 + 0.005)
    expected = 0.5 * (1 + math.erf(1.0 / math.sqrt(1.005) / math.sqrt(2)))

    assert probabilistic_sharpe_ratio(0.1, 0.0, 101, 0.0, 3.0) == pytest.approx(expected)


@given(trials=st.integers(2, 500), more=st.integers(1, 500))
def test_more_trials_never_raise_the_deflated_sharpe(trials: int, more: int) -> None:
    returns = np.random.default_rng(7).normal(0.002, 0.01, 400)
    spread = np.linspace(-0.1, 0.1, trials)
    wider = np.linspace(-0.1, 0.1, trials + more)

    fewer = deflated_sharpe_ratio(returns, spread).probability
    many = deflated_sharpe_ratio(returns, wider).probability

    assert many <= fewer + 1e-12


def test_sample_moments_of_normal_returns_are_near_zero_and_three() -> None:
    skewness, kurtosis = sample_moments(np.random.default_rng(5).normal(0, 1, 200_000))

    assert skewness == pytest.approx(0.0, abs=0.02)
    assert kurtosis == pytest.approx(3.0, abs=0.05)


def test_pbo_is_zero_when_one_trial_dominates_everywhere() -> None:
    generator = np.random.default_rng(11)
    noise = generator.normal(0.0, 0.01, size=(800, 10))
    noise[:, 4] += 0.02  # a genuinely better strategy in every period

    result = probability_of_backtest_overfitting(noise, partitions=8)

    assert result.probability == 0.0
    assert result.combinations == math.comb(8, 4)


def test_pbo_is_one_when_the_in_sample_winner_always_loses_out_of_sample() -> None:
    # Arrange: each trial earns in exactly one block and loses in every other block, so the
    # in-sample best is always a trial whose good block is in-sample: the worst out of sample.
    partitions, trials, block = 8, 8, 50
    returns = np.full((partitions * block, trials), -0.001)
    wiggle = np.random.default_rng(2).normal(0, 1e-5, returns.shape)
    for trial in range(trials):
        returns[trial * block : (trial + 1) * block, trial] = 0.01
    returns += wiggle

    # Act
    result = probability_of_backtest_overfitting(returns, partitions=partitions)

    # Assert
    assert result.probability == 1.0


def test_pbo_of_pure_noise_averages_one_half() -> None:
    # One matrix gives one (highly variable) PBO; skill-less trials average 1/2 over many.
    generator = np.random.default_rng(21)
    estimates = [
        probability_of_backtest_overfitting(
            generator.normal(0.0, 0.01, size=(400, 20)), partitions=8
        ).probability
        for _ in range(60)
    ]

    assert float(np.mean(estimates)) == pytest.approx(0.5, abs=0.1)


def test_pbo_rejects_an_odd_number_of_partitions() -> None:
    with pytest.raises(ValueError, match="even"):
        probability_of_backtest_overfitting(np.zeros((100, 3)), partitions=5)
