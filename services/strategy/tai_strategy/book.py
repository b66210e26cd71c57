"""The strategy book: which strategies run, their weights per regime, and run-time changes.

Pure and synchronous like the strategies it holds. Every bar reaches every strategy (disabled
ones only warm their indicators, so re-enabling one needs no history); predictions set the
symbol's regime (``PredictionMade.regime``) and reach the strategies that trade them. Before a
strategy sees a symbol's bar or prediction, the book hands it the weight of the symbol's
current regime, which scales its entries (0 stops new entries, exits still happen).

``configure`` applies a ConfigureStrategy command: ``enabled`` switches a strategy on or off
(building it on first use), parameter keys re-parameterise it — it is rebuilt and the book's
recent bars replayed through ``warm_up`` so its indicators are current at once — and keys
``weight.<regime>`` set its regime weights.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

from pydantic import BaseModel, ValidationError

from tai_events.market import BarClosed, Timeframe
from tai_events.ml import PredictionMade
from tai_strategy.base import (
    MultiTimeframe,
    OrderIntent,
    PredictionConsumer,
    RegimeWeighted,
    Strategy,
)
from tai_strategy.bracket import BracketStrategy
from tai_strategy.registry import strategy_type

REGIMES = ("trend", "range", "volatile")
"""Regime names the inference service's regime detector emits."""

DEFAULT_REGIME_WEIGHTS: dict[str, dict[str, float]] = {
    "scalping": {"trend": 0.5, "range": 1.0, "volatile": 0.5},
    "intraday": {"trend": 1.0, "range": 0.5, "volatile": 0.5},
    "swing": {"trend": 1.0, "range": 0.25, "volatile": 0.5},
    "ml_driven": {"trend": 1.0, "range": 1.0, "volatile": 0.5},
}
"""Mean reversion earns its keep in ranges, trend following in trends; every strategy halves
its size when volatility is high. A regime not listed (or no regime yet) weighs 1.0."""

WEIGHT_PREFIX = "weight."


@functools.cache
def _accepts_weights(strategy_type: type) -> bool:
    """Return True when a strategy type scales its entries by regime weight.

    Decided once per type: an isinstance check against the runtime protocol on every bar
    cost the strategy service a seventh of its time.
    """
    return callable(getattr(strategy_type, "set_weight", None))


class InvalidConfigurationError(ValueError):
    """A configure command names an unknown strategy or invalid parameters."""


@dataclass
class StrategySlot:
    """One strategy in the book with its parameters, switch and regime weights."""

    strategy: Strategy
    parameters: BaseModel
    enabled: bool
    weights: dict[str, float] = field(default_factory=dict)

    def weight(self, regime: str | None) -> float:
        """Return the weight of a regime (1.0 when unknown or not listed)."""
        return 1.0 if regime is None else self.weights.get(regime, 1.0)

    def status(self) -> dict[str, Any]:
        """Return the parameters and weights as scalars (as StrategyParametersUpdated has them)."""
        values: dict[str, Any] = {
            key: _scalar(value) for key, value in self.parameters.model_dump().items()
        }
        values.update({f"{WEIGHT_PREFIX}{regime}": w for regime, w in sorted(self.weights.items())})
        return values


def _scalar(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return ",".join(str(item) for item in value)
    return value


class StrategyBook:
    """Holds the running strategies and routes bars and predictions to them."""

    def __init__(self, history_bars: int = 1_000) -> None:
        self.slots: dict[str, StrategySlot] = {}
        self.regimes: dict[str, str | None] = {}
        self._history_bars = history_bars
        self._history: dict[str, deque[BarClosed]] = {}

    @classmethod
    def from_names(
        cls,
        names: Sequence[str],
        parameters: Mapping[str, Mapping[str, Any]] | None = None,
        weights: Mapping[str, Mapping[str, float]] | None = None,
        history_bars: int = 1_000,
    ) -> StrategyBook:
        """Build a book running the named strategies with their parameters and weights."""
        book = cls(history_bars)
        for name in names:
            book.add(name, (parameters or {}).get(name, {}), (weights or {}).get(name))
        return book

    def add(
        self,
        name: str,
        values: Mapping[str, Any] | None = None,
        weights: Mapping[str, float] | None = None,
        *,
        enabled: bool = True,
    ) -> StrategySlot:
        """Build a strategy by name and put it in the book."""
        try:
            strategy, parameters = strategy_type(name).create(values)
        except (ValidationError, ValueError) as error:
            raise InvalidConfigurationError(f"{name}: {error}") from error
        chosen = dict(DEFAULT_REGIME_WEIGHTS.get(name, {}) if weights is None else weights)
        _check_weights(name, chosen)
        slot = StrategySlot(strategy, parameters, enabled, chosen)
        self.slots[name] = slot
        self._replay(strategy)
        return slot

    # -- market data -------------------------------------------------------------------------

    def _weigh(self, slot: StrategySlot, symbol: str) -> None:
        if _accepts_weights(type(slot.strategy)):
            weighted = cast(RegimeWeighted, slot.strategy)
            weighted.set_weight(symbol, slot.weight(self.regimes.get(symbol)))

    def _remember(self, bar: BarClosed) -> None:
        history = self._history.get(bar.symbol)
        if history is None:
            history = self._history[bar.symbol] = deque(maxlen=self._history_bars)
        if not history or bar.opened_at > history[-1].opened_at:
            history.append(bar)

    def warm_up(self, bar: BarClosed) -> None:
        """Replay a historical bar through every strategy without trading."""
        self._remember(bar)
        for slot in self.slots.values():
            slot.strategy.warm_up(bar)

    def on_bar(self, bar: BarClosed) -> list[tuple[str, OrderIntent]]:
        """Return each enabled strategy's orders for a bar, tagged with its name."""
        self._remember(bar)
        orders: list[tuple[str, OrderIntent]] = []
        for name, slot in self.slots.items():
            if not slot.enabled:
                slot.strategy.warm_up(bar)
                continue
            self._weigh(slot, bar.symbol)
            orders.extend((name, intent) for intent in slot.strategy.on_bar(bar))
        return orders

    def on_higher_bar(self, bar: BarClosed) -> None:
        """Hand a higher-timeframe bar to the strategies that read it (enabled or not)."""
        for slot in self.slots.values():
            strategy = slot.strategy
            if isinstance(strategy, MultiTimeframe) and bar.timeframe in strategy.higher_timeframes:
                strategy.on_higher_bar(bar)

    def higher_timeframes(self) -> set[Timeframe]:
        """Return the higher timeframes the book's strategies read."""
        return {
            timeframe
            for slot in self.slots.values()
            if isinstance(slot.strategy, MultiTimeframe)
            for timeframe in slot.strategy.higher_timeframes
        }

    def on_prediction(self, prediction: PredictionMade) -> list[tuple[str, OrderIntent]]:
        """Record the symbol's regime; return the orders prediction-driven strategies want."""
        if prediction.regime is not None:
            self.regimes[prediction.symbol] = prediction.regime
        orders: list[tuple[str, OrderIntent]] = []
        for name, slot in self.slots.items():
            strategy = slot.strategy
            if slot.enabled and isinstance(strategy, PredictionConsumer):
                self._weigh(slot, prediction.symbol)
                orders.extend((name, intent) for intent in strategy.on_prediction(prediction))
        return orders

    @property
    def consumes_predictions(self) -> bool:
        """Return True when predictions matter: a strategy trades them or weighs regimes."""
        return any(
            isinstance(slot.strategy, PredictionConsumer | RegimeWeighted)
            for slot in self.slots.values()
        )

    # -- control -----------------------------------------------------------------------------

    def configure(
        self, name: str, enabled: bool | None, parameters: Mapping[str, Any]
    ) -> StrategySlot:
        """Apply a ConfigureStrategy command and return the strategy's new slot."""
        weights = {
            key.removeprefix(WEIGHT_PREFIX): value
            for key, value in parameters.items()
            if key.startswith(WEIGHT_PREFIX)
        }
        values = {k: v for k, v in parameters.items() if not k.startswith(WEIGHT_PREFIX)}
        slot = self.slots.get(name)
        if slot is None:
            # A strategy not configured at start: build it, off unless asked to run.
            slot = self.add(name, values, None, enabled=bool(enabled))
            values = {}
        try:
            new_weights = {**slot.weights, **{k: float(v) for k, v in weights.items()}}
        except (TypeError, ValueError) as error:
            raise InvalidConfigurationError(f"{name}: weights must be numbers") from error
        _check_weights(name, new_weights)
        if values:
            kind = strategy_type(name)
            try:
                parameters_model = kind.parameters({**slot.parameters.model_dump(), **values})
            except ValidationError as error:
                raise InvalidConfigurationError(f"{name}: {error}") from error
            strategy = kind.build(parameters_model)
            self._replay(strategy)
            _carry_open_trades(slot.strategy, strategy)
            slot.strategy, slot.parameters = strategy, parameters_model
        slot.weights = new_weights
        if enabled is not None:
            slot.enabled = enabled
        return slot

    def _replay(self, strategy: Strategy) -> None:
        for history in self._history.values():
            for bar in history:
                strategy.warm_up(bar)


def _check_weights(name: str, weights: Mapping[str, float]) -> None:
    for regime, weight in weights.items():
        if not 0.0 <= weight <= 10.0:
            raise InvalidConfigurationError(
                f"{name}: weight of regime {regime!r} must be within [0, 10], got {weight}"
            )


def _carry_open_trades(old: Strategy, new: Strategy) -> None:
    """Keep a bracketed strategy's open trades across a re-parameterisation."""
    if isinstance(old, BracketStrategy) and isinstance(new, BracketStrategy):
        new.adopt_trades(old)
