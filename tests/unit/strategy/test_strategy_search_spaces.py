"""Search spaces declared next to the strategies."""

from __future__ import annotations

import pytest

from tai_strategy.search_spaces import IntegerDimension, search_space, sma_cross_search_space
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
