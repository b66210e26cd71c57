"""Parameter search spaces, declared next to the strategies they tune.

A space is plain data (no optimiser import): the research tools turn each dimension into an
Optuna distribution or a grid, and ``is_valid`` rejects combinations a strategy refuses.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from tai_strategy.sma_cross import SmaCrossParameters


@dataclass(frozen=True, slots=True)
class IntegerDimension:
    """An integer parameter searched over ``low..high`` (inclusive) in ``step`` increments."""

    name: str
    low: int
    high: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"{self.name}: low ({self.low}) is above high ({self.high})")
        if self.step < 1:
            raise ValueError(f"{self.name}: step must be at least 1")

    def values(self) -> range:
        """Return every value of the dimension."""
        return range(self.low, self.high + 1, self.step)


@dataclass(frozen=True)
class SearchSpace:
    """The tunable parameters of one strategy and the fixed ones passed through unchanged."""

    strategy: str
    dimensions: tuple[IntegerDimension, ...]
    validator: Callable[[Mapping[str, int]], bool]
    warm_up: Callable[[Mapping[str, int]], int]
    """Bars of history the strategy needs before its first possible signal."""

    def is_valid(self, parameters: Mapping[str, int]) -> bool:
        """Return True when the strategy accepts this combination."""
        return self.validator(parameters)

    def grid(self) -> Iterator[dict[str, int]]:
        """Yield every valid combination, in lexicographic order of the dimensions."""
        names = [dimension.name for dimension in self.dimensions]
        for values in itertools.product(*(dimension.values() for dimension in self.dimensions)):
            candidate = dict(zip(names, values, strict=True))
            if self.is_valid(candidate):
                yield candidate

    def max_warm_up(self) -> int:
        """Return the longest warm-up any combination of the space needs."""
        return max(self.warm_up(combination) for combination in self.grid())


def _sma_cross_valid(parameters: Mapping[str, int]) -> bool:
    try:
        SmaCrossParameters(fast=parameters["fast"], slow=parameters["slow"])
    except ValidationError:
        return False
    return True


def sma_cross_search_space(
    *, fast: tuple[int, int, int] = (3, 60, 1), slow: tuple[int, int, int] = (10, 200, 2)
) -> SearchSpace:
    """Return the sma_cross space: fast and slow SMA lengths (low, high, step), fast < slow."""
    return SearchSpace(
        strategy="sma_cross",
        dimensions=(IntegerDimension("fast", *fast), IntegerDimension("slow", *slow)),
        validator=_sma_cross_valid,
        warm_up=lambda parameters: int(parameters["slow"]),
    )


SEARCH_SPACES: dict[str, Callable[[], SearchSpace]] = {"sma_cross": sma_cross_search_space}
"""Default search space of each strategy by name."""


def search_space(strategy: str) -> SearchSpace:
    """Return the default search space of a strategy; raise KeyError for an unknown one."""
    try:
        return SEARCH_SPACES[strategy]()
    except KeyError:
        raise KeyError(
            f"no search space for strategy {strategy!r}; known: {', '.join(sorted(SEARCH_SPACES))}"
        ) from None
