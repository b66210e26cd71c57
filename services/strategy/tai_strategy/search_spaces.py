"""Parameter search spaces, declared next to the strategies they tune.

A space is plain data (no optimiser import): the research tools turn each dimension into an
Optuna distribution or a grid, and ``is_valid`` rejects combinations a strategy refuses.

The spaces of scalping, intraday and swing are centred on each strategy's documented defaults
(the seed's parameters): every dimension spans ``default +/- spread``. ml_driven's space is
its model's trade plan (target, stop, horizon, probability threshold), centred on the default
plan: a candidate plan is evaluated by training models for it, never by re-reading a model
trained for another plan.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from tai_events.ml import DEFAULT_TRADE_PLAN, TradePlan
from tai_strategy.intraday import IntradayParameters
from tai_strategy.scalping import ScalpingParameters
from tai_strategy.sma_cross import SmaCrossParameters
from tai_strategy.swing import SwingParameters

ML_TRAINING_BARS = 500
"""Bars ml_driven's research models learn from before they predict (its warm-up)."""


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

    @property
    def centre(self) -> float:
        """Return the middle of the range."""
        return (self.low + self.high) / 2


@dataclass(frozen=True, slots=True)
class FloatDimension:
    """A real parameter searched over ``low..high`` (inclusive) in ``step`` increments."""

    name: str
    low: float
    high: float
    step: float

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"{self.name}: low ({self.low}) is above high ({self.high})")
        if not self.step > 0:
            raise ValueError(f"{self.name}: step must be positive")

    def values(self) -> list[float]:
        """Return every value of the dimension (rounded: no 0.30000000000000004)."""
        count = round((self.high - self.low) / self.step)
        return [round(self.low + index * self.step, 10) for index in range(count + 1)]

    @property
    def centre(self) -> float:
        """Return the middle of the range."""
        return (self.low + self.high) / 2


Dimension = IntegerDimension | FloatDimension


def around(name: str, centre: float, spread: float, step: float) -> Dimension:
    """Return the dimension ``centre +/- spread``: integer when all three are integers."""
    if all(float(value).is_integer() for value in (centre, spread, step)):
        return IntegerDimension(name, int(centre - spread), int(centre + spread), int(step))
    return FloatDimension(name, centre - spread, centre + spread, step)


@dataclass(frozen=True)
class SearchSpace:
    """The tunable parameters of one strategy and the fixed ones passed through unchanged."""

    strategy: str
    dimensions: tuple[Dimension, ...]
    validator: Callable[[Mapping[str, Any]], bool]
    warm_up: Callable[[Mapping[str, Any]], int]
    """Bars of history the strategy needs before its first possible signal."""
    centre: Mapping[str, Any] | None = None
    """The parameters the space is centred on (the strategy's defaults), if it has one."""

    def is_valid(self, parameters: Mapping[str, Any]) -> bool:
        """Return True when the strategy accepts this combination."""
        return self.validator(parameters)

    def grid(self) -> Iterator[dict[str, Any]]:
        """Yield every valid combination, in lexicographic order of the dimensions."""
        names = [dimension.name for dimension in self.dimensions]
        for values in itertools.product(*(dimension.values() for dimension in self.dimensions)):
            candidate = dict(zip(names, values, strict=True))
            if self.is_valid(candidate):
                yield candidate

    def max_warm_up(self) -> int:
        """Return the longest warm-up any combination of the space needs."""
        return max(self.warm_up(combination) for combination in self.grid())


def _sma_cross_valid(parameters: Mapping[str, Any]) -> bool:
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


def _accepted_by(parameters_type: type[BaseModel]) -> Callable[[Mapping[str, Any]], bool]:
    def valid(parameters: Mapping[str, Any]) -> bool:
        try:
            parameters_type.model_validate(dict(parameters))
        except ValidationError:
            return False
        return True

    return valid


def _centred(
    strategy: str,
    parameters_type: type[BaseModel],
    spreads: Mapping[str, tuple[float, float]],
    warm_up: Callable[[Mapping[str, Any]], int],
) -> SearchSpace:
    """Return the space ``default +/- spread`` (in ``step``s) of each named parameter."""
    defaults = parameters_type().model_dump()
    return SearchSpace(
        strategy=strategy,
        dimensions=tuple(
            around(name, float(defaults[name]), spread, step)
            for name, (spread, step) in spreads.items()
        ),
        validator=_accepted_by(parameters_type),
        warm_up=warm_up,
        centre={name: defaults[name] for name in spreads},
    )


def _value(parameters: Mapping[str, Any], defaults: BaseModel, name: str) -> int:
    return int(parameters.get(name, getattr(defaults, name)))


def scalping_search_space() -> SearchSpace:
    """Return scalping's space: bands, RSI levels, confirmations and exits, around defaults."""
    defaults = ScalpingParameters()

    def warm_up(parameters: Mapping[str, Any]) -> int:
        value = _value
        return 1 + max(
            value(parameters, defaults, "bollinger_period"),
            value(parameters, defaults, "rsi_period") + 1,
            value(parameters, defaults, "macd_slow") + value(parameters, defaults, "macd_signal"),
            value(parameters, defaults, "volume_period") + 1,
            value(parameters, defaults, "atr_period") + 1,
        )

    return _centred(
        "scalping",
        ScalpingParameters,
        {
            "bollinger_period": (10, 2),
            "bollinger_std": (0.5, 0.25),
            "rsi_oversold": (10, 5),
            "rsi_overbought": (10, 5),
            "min_confirmations": (1, 1),
            "stop_atr": (1.0, 0.5),
            "take_profit_atr": (1.5, 0.5),
            "max_holding_bars": (20, 5),
        },
        warm_up,
    )


def intraday_search_space() -> SearchSpace:
    """Return intraday's space: EMA lengths, trend strength, RSI ceiling and exits."""
    defaults = IntradayParameters()

    def warm_up(parameters: Mapping[str, Any]) -> int:
        value = _value
        return 1 + max(
            value(parameters, defaults, "slow_period"),
            2 * value(parameters, defaults, "adx_period"),
            value(parameters, defaults, "macd_slow") + value(parameters, defaults, "macd_signal"),
            value(parameters, defaults, "atr_period") + 1,
        )

    return _centred(
        "intraday",
        IntradayParameters,
        {
            "fast_period": (10, 2),
            "slow_period": (20, 5),
            "min_adx": (10.0, 2.5),
            "rsi_ceiling": (10, 5),
            "stop_atr": (0.5, 0.25),
            "take_profit_atr": (1.0, 0.5),
            "max_holding_bars": (24, 6),
        },
        warm_up,
    )


SWING_HIGHER_BARS = 24
"""Trading bars per higher-timeframe bar the warm-up assumes (hourly bars, daily trend)."""


def swing_search_space() -> SearchSpace:
    """Return swing's space: EMA lengths, the higher trend's EMA, RSI ceiling and exits."""
    defaults = SwingParameters()

    def warm_up(parameters: Mapping[str, Any]) -> int:
        value = _value
        return 1 + max(
            value(parameters, defaults, "slow_period"),
            (value(parameters, defaults, "higher_period") + 1) * SWING_HIGHER_BARS,
            value(parameters, defaults, "atr_period") + 1,
        )

    return _centred(
        "swing",
        SwingParameters,
        {
            "fast_period": (5, 1),
            "slow_period": (10, 2),
            "higher_period": (10, 2),
            "rsi_ceiling": (10, 5),
            "stop_atr": (1.0, 0.5),
            "take_profit_atr": (2.0, 0.5),
            "max_holding_bars": (30, 10),
        },
        warm_up,
    )


def ml_driven_search_space() -> SearchSpace:
    """Return ml_driven's space: the trade plan its models are trained for, around the default.

    A point is a :class:`~tai_events.ml.TradePlan`; evaluating it trains models for it (the
    research tools retrain on a sliding window of ``ML_TRAINING_BARS``).
    """
    defaults = DEFAULT_TRADE_PLAN.model_dump()
    spreads = {
        "take_profit_atr": (1.5, 0.5),
        "stop_loss_atr": (1.0, 0.5),
        "max_horizon_bars": (12, 6),
        "probability_threshold": (0.1, 0.05),
    }
    return SearchSpace(
        strategy="ml_driven",
        dimensions=tuple(
            around(name, float(defaults[name]), spread, step)
            for name, (spread, step) in spreads.items()
        ),
        validator=_accepted_by(TradePlan),
        warm_up=lambda _parameters: ML_TRAINING_BARS,
        centre={name: defaults[name] for name in spreads},
    )


SEARCH_SPACES: dict[str, Callable[[], SearchSpace]] = {
    "sma_cross": sma_cross_search_space,
    "scalping": scalping_search_space,
    "intraday": intraday_search_space,
    "swing": swing_search_space,
    "ml_driven": ml_driven_search_space,
}
"""Default search space of each strategy by name."""


def search_space(strategy: str) -> SearchSpace:
    """Return the default search space of a strategy; raise KeyError for an unknown one."""
    try:
        return SEARCH_SPACES[strategy]()
    except KeyError:
        raise KeyError(
            f"no search space for strategy {strategy!r}; known: {', '.join(sorted(SEARCH_SPACES))}"
        ) from None
