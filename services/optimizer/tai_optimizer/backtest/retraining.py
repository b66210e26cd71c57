"""Backtest a prediction-driven strategy as the live loop runs it: predict, trade, retrain.

:class:`PredictingStrategy` is a :class:`~tai_strategy.base.Strategy` for the event-driven
backtester (nothing in the engine changes): each bar goes to the wrapped strategy, then to the
live :class:`~tai_inference.engine.InferenceEngine` (incremental features, regime filter,
model), whose prediction the strategy trades on the same bar — exactly the order of the live
services (``market.bar`` -> inference -> ``ml.prediction`` -> strategy).

With a :class:`RetrainingSchedule` the model is retrained every ``every`` bars on the last
``window`` bars (a sliding window, as a scheduled live retrain would) and served from the next
bar on; like FreqAI's ``backtest_period_days``. No lookahead: a model trained at bar t sees
bars up to t only (its labels end ``max_horizon_bars`` earlier: the triple barrier needs the
bars after an entry), and predicts bar t + 1 onwards; changing any bar after t changes nothing
predicted up to t (a test shuffles the future to prove it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime

import pandas as pd

from tai_events.market import BarClosed
from tai_events.ml import PredictionMade
from tai_inference.engine import InferenceEngine
from tai_inference.model import ServingModel
from tai_inference.training import TrainingOptions, train_model
from tai_strategy.base import OrderIntent, PredictionConsumer, Strategy


class NotAPredictionStrategyError(TypeError):
    """The wrapped strategy does not trade predictions."""


@dataclass(frozen=True)
class RetrainingSchedule:
    """Retrain every ``every`` bars on the last ``window`` bars with ``options``."""

    every: int
    window: int = 2_000
    options: TrainingOptions = field(default_factory=TrainingOptions)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError("retrain every must be at least 1 bar")
        if self.window < 200:
            raise ValueError("a training window needs at least 200 bars")


@dataclass(frozen=True, slots=True)
class Retrained:
    """One retraining of the backtest: when, on which bars, which model."""

    symbol: str
    at_bar: datetime
    """Closing time of the last bar the model learnt from."""
    first_bar: datetime
    bars: int
    model_id: str


def frame_of(bars: list[BarClosed]) -> pd.DataFrame:
    """Return the OHLCV frame (index = opening times) of bars, as training reads it."""
    return pd.DataFrame(
        {
            "open": [bar.open for bar in bars],
            "high": [bar.high for bar in bars],
            "low": [bar.low for bar in bars],
            "close": [bar.close for bar in bars],
            "volume": [bar.volume for bar in bars],
        },
        index=pd.DatetimeIndex([bar.opened_at for bar in bars]),
    )


class PredictingStrategy:
    """A prediction-trading strategy with the inference engine (and retraining) in front."""

    def __init__(
        self,
        strategy: Strategy,
        *,
        schedule: RetrainingSchedule | None = None,
        models: dict[str, ServingModel] | None = None,
        engine: InferenceEngine | None = None,
    ) -> None:
        if not isinstance(strategy, PredictionConsumer):
            raise NotAPredictionStrategyError(f"{strategy.name} does not trade predictions")
        if schedule is None and not models:
            raise ValueError("give a retraining schedule or the models to serve")
        self.strategy = strategy
        self.consumer: PredictionConsumer = strategy
        self.name = strategy.name
        self.schedule = schedule
        self.engine = engine or InferenceEngine()
        for symbol, model in (models or {}).items():
            self.engine.set_model(symbol, model)
        self.predictions: list[PredictionMade] = []
        self.retrained: list[Retrained] = []
        self._history: dict[str, deque[BarClosed]] = {}
        self._since: dict[str, int] = {}

    def warm_up(self, bar: BarClosed) -> None:
        """Prime the strategy, the features and the training history without trading."""
        self.strategy.warm_up(bar)
        self.engine.warm_up(bar)
        self._remember(bar)

    def on_bar(self, bar: BarClosed) -> list[OrderIntent]:
        """Trade the bar, predict it, trade the prediction; then retrain when due."""
        intents = self.strategy.on_bar(bar)
        outcome = self.engine.on_bar(bar)
        if outcome.prediction is not None:
            self.predictions.append(outcome.prediction)
            intents = [*intents, *self.consumer.on_prediction(outcome.prediction)]
        self._remember(bar)
        self._retrain_if_due(bar)
        return intents

    def _remember(self, bar: BarClosed) -> None:
        if self.schedule is None:
            return
        history = self._history.get(bar.symbol)
        if history is None:
            history = self._history[bar.symbol] = deque(maxlen=self.schedule.window)
        history.append(bar)
        self._since[bar.symbol] = self._since.get(bar.symbol, 0) + 1

    def _retrain_if_due(self, bar: BarClosed) -> None:
        schedule = self.schedule
        if schedule is None:
            return
        history = self._history[bar.symbol]
        if len(history) < schedule.window:
            return
        served = self.engine.model(bar.symbol)
        if served is not None and self._since[bar.symbol] < schedule.every:
            return
        options = replace(
            schedule.options,
            symbol=bar.symbol,
            timeframe=bar.timeframe.value,
            evaluate=False,
        )
        window = list(history)
        record = train_model(frame_of(window), options, created_at=bar.closed_at).record
        self.engine.set_model(bar.symbol, ServingModel.from_record(record))
        self._since[bar.symbol] = 0
        self.retrained.append(
            Retrained(bar.symbol, bar.closed_at, window[0].opened_at, len(window), record.model_id)
        )
