"""Strategies the research tools can build by name from ``KEY=VALUE`` parameters.

:func:`build_runner` builds what a research run trades: the live strategy, and for a strategy
that trades predictions (ml_driven) the live inference engine in front of it, its models
trained for the trade plan the parameters name, retrained on a sliding window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from tai_events.ml import TradePlan
from tai_inference.training import TrainingOptions
from tai_optimizer.backtest.retraining import PredictingStrategy, RetrainingSchedule
from tai_strategy.base import PredictionConsumer, Strategy
from tai_strategy.registry import STRATEGY_TYPES, StrategyType
from tai_strategy.search_spaces import ML_TRAINING_BARS

RESEARCH_MODEL_OPTIONS = TrainingOptions(max_rounds=100, early_stopping_rounds=15)
"""Models research runs train for each candidate plan (fewer rounds: many are trained)."""


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


def split_plan(parameters: Mapping[str, Any]) -> tuple[TradePlan | None, dict[str, Any]]:
    """Return (the trade plan named by the parameters, the rest) — None when none is named."""
    names = set(TradePlan.model_fields)
    plan_values = {key: value for key, value in parameters.items() if key in names}
    rest = {key: value for key, value in parameters.items() if key not in names}
    return (TradePlan.model_validate(plan_values) if plan_values else None), rest


def build_runner(
    name: str,
    parameters: Mapping[str, Any],
    *,
    model_options: TrainingOptions = RESEARCH_MODEL_OPTIONS,
    retrain_every: int = ML_TRAINING_BARS,
    training_bars: int = ML_TRAINING_BARS,
) -> Strategy:
    """Return the strategy a research run trades with these parameters.

    A prediction strategy gets the inference engine in front, its models trained for the
    plan in ``parameters`` (trade-plan keys; the options' plan otherwise) every
    ``retrain_every`` bars on the last ``training_bars`` bars.
    """
    kind = STRATEGY_TYPES.get(name)
    if kind is None:
        raise UnknownStrategyError(
            f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGY_TYPES))}"
        )
    trades_predictions = callable(getattr(kind.build, "on_prediction", None))
    plan, rest = split_plan(parameters) if trades_predictions else (None, dict(parameters))
    try:
        strategy, _ = kind.create(rest)
    except ValidationError as error:
        raise UnknownStrategyError(f"invalid parameters for {name}: {error}") from error
    if not isinstance(strategy, PredictionConsumer):
        return strategy
    options = replace(model_options, plan=plan) if plan is not None else model_options
    return PredictingStrategy(
        strategy,
        schedule=RetrainingSchedule(every=retrain_every, window=training_bars, options=options),
    )
