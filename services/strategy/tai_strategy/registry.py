"""Every strategy by name, with its parameter model: build, validate and re-parameterise."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tai_strategy.base import Strategy
from tai_strategy.intraday import IntradayParameters, IntradayStrategy
from tai_strategy.ml_driven import MlDrivenParameters, MlDrivenStrategy
from tai_strategy.scalping import ScalpingParameters, ScalpingStrategy
from tai_strategy.sma_cross import SmaCrossParameters, SmaCrossStrategy
from tai_strategy.swing import SwingParameters, SwingStrategy


class UnknownStrategyError(ValueError):
    """No strategy of that name."""


@dataclass(frozen=True)
class StrategyType:
    """A strategy's name, parameter model and constructor."""

    name: str
    parameters_type: type[BaseModel]
    build: Callable[[Any], Strategy]

    def parameters(self, values: Mapping[str, Any]) -> BaseModel:
        """Validate parameter values (pydantic coerces strings from a CLI or a command)."""
        return self.parameters_type.model_validate(dict(values))

    def create(self, values: Mapping[str, Any] | None = None) -> tuple[Strategy, BaseModel]:
        """Return a fresh strategy and its validated parameters."""
        parameters = self.parameters(values or {})
        return self.build(parameters), parameters


STRATEGY_TYPES: dict[str, StrategyType] = {
    kind.name: kind
    for kind in (
        StrategyType("sma_cross", SmaCrossParameters, SmaCrossStrategy),
        StrategyType("scalping", ScalpingParameters, ScalpingStrategy),
        StrategyType("intraday", IntradayParameters, IntradayStrategy),
        StrategyType("swing", SwingParameters, SwingStrategy),
        StrategyType("ml_driven", MlDrivenParameters, MlDrivenStrategy),
    )
}


def strategy_type(name: str) -> StrategyType:
    """Return the strategy type of that name or raise UnknownStrategyError."""
    kind = STRATEGY_TYPES.get(name)
    if kind is None:
        raise UnknownStrategyError(
            f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGY_TYPES))}"
        )
    return kind
