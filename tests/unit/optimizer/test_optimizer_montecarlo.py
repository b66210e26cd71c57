"""Monte Carlo on trades and returns: distributions, ruin and fan-chart bands."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_optimizer.montecarlo import MonteCarloMethod, simulate_returns, simulate_trades

PNLS = np.array([500.0, -300.0, 800.0, -1200.0, 400.0, 250.0, -100.0, 900.0])


@given(seed=st.integers(0, 10_000))
def test_reshuffling_trades_keeps_the_final_equity_and_changes_only_the_path(seed: int) -> None:
    result = simulate_trades(
        PNLS,
        initial_equity=10_000.0,
        method=MonteCarloMethod.TRADE_RESHUFFLE,
        simulations=200,
        seed=seed,
    )

    assert np.allclose(result.final_equity, 10_000.0 + PNLS.sum())
    assert result.max_drawdown_pct.min() >= 0.0


def test_bootstrapped_trades_centre_on_the_mean_trade() -> None:
    result = simulate_trades(PNLS, initial_equity=10_000.0, simulations=20_000, seed=4)

    expected = 10_000.0 + PNLS.size * PNLS.mean()
    assert float(np.mean(result.final_equity)) == pytest.approx(expected, rel=0.005)
    percentiles = result.final_equity_percentiles()
    assert percentiles["p5"] < percentiles["p50"] < percentiles["p95"]


def test_ruin_is_certain_when_every_trade_loses_enough() -> None:
    result = simulate_trades(
        np.array([-3_000.0, -2_500.0]),
        initial_equity=10_000.0,
        simulations=100,
        ruin_loss_pct=50.0,
    )

    assert result.probability_of_ruin == 1.0
    assert result.max_drawdown_pct.min() >= 50.0


def test_ruin_never_happens_when_no_trade_loses() -> None:
    result = simulate_trades(np.array([10.0, 20.0]), initial_equity=1_000.0, simulations=100)

    assert result.probability_of_ruin == 0.0
    assert np.all(result.max_drawdown_pct == 0.0)


def test_returns_bootstrap_bands_are_ordered_and_start_at_the_initial_equity() -> None:
    returns = np.random.default_rng(1).normal(0.0005, 0.01, 500)

    result = simulate_returns(returns, initial_equity=50_000.0, simulations=500, block_size=10)

    assert result.bands.shape == (3, 501)
    assert np.all(result.bands[:, 0] == 50_000.0)
    assert np.all(result.bands[0] <= result.bands[1])
    assert np.all(result.bands[1] <= result.bands[2])
    summary = result.summary()
    assert set(summary["bands"]) == {"p5", "p50", "p95"}


def test_constant_returns_compound_exactly() -> None:
    result = simulate_returns(np.full(10, 0.01), initial_equity=100.0, simulations=5, seed=9)

    assert np.allclose(result.final_equity, 100.0 * 1.01**10)


def test_the_same_seed_gives_the_same_paths() -> None:
    first = simulate_trades(PNLS, initial_equity=10_000.0, simulations=50, seed=13)
    second = simulate_trades(PNLS, initial_equity=10_000.0, simulations=50, seed=13)

    assert np.array_equal(first.final_equity, second.final_equity)


def test_trades_method_refuses_the_returns_method() -> None:
    with pytest.raises(ValueError, match="simulate_returns"):
        simulate_trades(PNLS, initial_equity=1.0, method=MonteCarloMethod.RETURN_BOOTSTRAP)
