"""Strategies the research tools can build by name from ``KEY=VALUE`` parameters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from tai_strategy.base import Strategy
from tai_strategy.registry import STRATEGY_TYPES, StrategyType


class UnknownStrategyError(ValueError):
    """No strategy of that name, or its parameters are invalid."""


def _factory(kind: StrategyType) -> Callable[[Mapping[str, str]], tuple[Strategy, BaseModel]]:
    return kind.create


STRATEGY_FACTORIES: dict[str, Callable[[Mapping[str, str]], tuple[Strategy, BaseModel]]] = {
    name: _factory(kind) for name, kind in STRATEGY_TYPES.items()
}
"""Every strategy the live service can run (tai_strategy.registry), by name."""


def build_strategy(name: str, parameters: Mapping[str, str]) -> tuple[Strategy, dict[str, Any]]:
    """Return the strategy and its validated parameters, or raise UnknownStrategyError."""
    factory = STRATEGY_FACTORIES.get(name)
    if factory is None:
        raise UnknownStrategyError(
            f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGY_FACTORIES))}"
        )
    try:
        strategy, values = factory(parameters)
    except ValidationError as error:
        raise UnknownStrategyError(f"invalid parameters for {name}: {error}") from error
    return strategy, values.model_dump()


def parse_parameters(pairs: list[str]) -> dict[str, str]:
    """Parse ``KEY=VALUE`` strings; raise ValueError on a malformed one."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"parameter {pair!r} is not KEY=VALUE")
        parsed[key.strip()] = value.strip()
    return parsed
