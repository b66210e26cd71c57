"""Search spaces declared next to the strategies."""

from __future__ import annotations

import numpy as np
import pytest

from tai_events.ml import DEFAULT_TRADE_PLAN
from tai_strategy.registry import strategy_type
from tai_strategy.search_spaces import (
    FloatDimension,
    IntegerDimension,
    search_space,
    sma_cross_search_space,
)
from tai_strategy.sma_cross import SmaCrossParameters


def test_sma_cross_grid_holds_only_combinations_the_strategy_accepts() -> None:
    space = sma_cross_search_space(fast=(5, 30, 5), slow=(10, 40, 10))

    grid = list(space.grid())

    assert grid
    assert all(combination["fast"] < combination["slow"] for combination in grid)
    for combination in grid:
        SmaCrossParameters(**combination)  # never raises
    assert len(grid) == sum(
        1 for fast in range(5, 31, 5) for slow in range(10, 41, 10) if fast < slow
    )


def test_warm_up_is_the_slow_length() -> None:
    space = sma_cross_search_space(fast=(2, 4, 1), slow=(10, 50, 20))

    assert space.warm_up({"fast": 3, "slow": 30}) == 30
    assert space.max_warm_up() == 50


def test_invalid_combinations_are_reported() -> None:
    space = search_space("sma_cross")

    assert space.is_valid({"fast": 5, "slow": 20})
    assert not space.is_valid({"fast": 20, "slow": 20})


def test_unknown_strategy_and_inverted_bounds_are_refused() -> None:
    with pytest.raises(KeyError, match="no search space"):
        search_space("nope")
    with pytest.raises(ValueError, match="above high"):
        IntegerDimension("fast", 10, 5)


@pytest.mark.parametrize("strategy", ["scalping", "intraday", "swing", "ml_driven"])
def test_every_space_is_centred_on_the_strategys_seed_parameters(strategy: str) -> None:
    # Arrange
    space = search_space(strategy)
    defaults = (
        DEFAULT_TRADE_PLAN.model_dump()
        if strategy == "ml_driven"
        else strategy_type(strategy).parameters({}).model_dump()
    )
    # Act / Assert: each dimension's middle is the default, which the grid contains
    assert space.centre is not None
    for dimension in space.dimensions:
        assert dimension.centre == pytest.approx(float(defaults[dimension.name])), dimension
        assert any(value == pytest.approx(defaults[dimension.name]) for value in dimension.values())
    assert space.is_valid(space.centre)


@pytest.mark.parametrize("strategy", ["scalping", "intraday", "swing"])
def test_sampled_points_are_parameters_the_strategy_accepts_or_are_refused(
    strategy: str,
) -> None:
    space = search_space(strategy)
    kind = strategy_type(strategy)
    rng = np.random.default_rng(1)
    for _ in range(50):
        point = {
            dimension.name: list(dimension.values())[rng.integers(len(list(dimension.values())))]
            for dimension in space.dimensions
        }
        if space.is_valid(point):
            kind.create(point)  # builds the live strategy
            assert space.warm_up(point) > 0


def test_ml_driven_space_is_the_trade_plan() -> None:
    space = search_space("ml_driven")
    assert {dimension.name for dimension in space.dimensions} == {
        "take_profit_atr",
        "stop_loss_atr",
        "max_horizon_bars",
        "probability_threshold",
    }
    point = {"take_profit_atr": 2.0, "stop_loss_atr": 1.5, "max_horizon_bars": 18}
    assert space.is_valid({**point, "probability_threshold": 0.45})
    assert not space.is_valid({**point, "probability_threshold": 1.5})


def test_float_dimension_values_are_exact_steps() -> None:
    assert FloatDimension("x", 0.4, 0.6, 0.05).values() == [0.4, 0.45, 0.5, 0.55, 0.6]
    with pytest.raises(ValueError, match="step"):
        FloatDimension("x", 0.0, 1.0, 0.0)
