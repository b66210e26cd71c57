"""ML-driven: trade the inference service's class probabilities, by the model's trade plan.

Bars keep ATR and the open trade current; a ``PredictionMade`` for the symbol's latest bar
opens a trade when the predicted class is LONG or SHORT with at least the plan's probability
threshold and the prediction's regime passes the filter (in ``allowed_regimes`` when that is
not empty, and never in ``blocked_regimes``). Predictions for an older bar, or arriving before
their bar, are ignored.

The exits and the threshold are not this strategy's to choose: every prediction carries the
:class:`~tai_events.ml.TradePlan` its model was trained for (the barriers of its labels and
the threshold its validation traded), and the trade is exactly that plan — stop
``stop_loss_atr`` and target ``take_profit_atr`` ATRs away, closed after
``max_holding_bars = max_horizon_bars``. A plan whose ATR length differs from the
strategy's is not traded. To trade another plan, train (and promote) a model for it. Risk
0.5-2 % per trade; the signal's confidence is the model's probability of the traded class
(its win probability under the plan).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from tai_events.market import BarClosed
from tai_events.ml import DEFAULT_TRADE_PLAN, PredictedClass, PredictionMade, TradePlan
from tai_events.orders import SignalDirection, TradingStyle
from tai_strategy.base import OrderIntent
from tai_strategy.bracket import BracketParameters, BracketStrategy, Signal


class MlDrivenParameters(BracketParameters):
    """ML-driven defaults (the documented live defaults); exits come from the model's plan."""

    RISK_RANGE_PCT: ClassVar[tuple[float, float]] = (0.5, 2.0)
    STYLE: ClassVar[TradingStyle | None] = TradingStyle.INTRADAY

    risk_per_trade_pct: float = Field(default=1.0, description="0.5-2 % of equity per trade")
    stop_atr: float = Field(
        default=DEFAULT_TRADE_PLAN.stop_loss_atr, gt=0, description="set by the model's plan"
    )
    take_profit_atr: float = Field(
        default=DEFAULT_TRADE_PLAN.take_profit_atr, gt=0, description="set by the model's plan"
    )
    max_holding_bars: int = Field(
        default=DEFAULT_TRADE_PLAN.max_horizon_bars, ge=0, description="set by the model's plan"
    )
    allowed_regimes: tuple[str, ...] = Field(
        default=(), description="trade only in these regimes; empty = any (comma-separated ok)"
    )
    blocked_regimes: tuple[str, ...] = Field(
        default=(), description="never trade in these regimes (comma-separated ok)"
    )
    require_regime: bool = Field(default=False, description="skip predictions that carry no regime")

    @model_validator(mode="before")
    @classmethod
    def _no_threshold_of_its_own(cls, values: Any) -> Any:
        if isinstance(values, dict) and "confidence_threshold" in values:
            raise ValueError(
                "ml_driven trades the probability threshold of its model's trade plan; "
                "train a model for another plan (trading-ai train --threshold ...) instead"
            )
        return values

    @field_validator("allowed_regimes", "blocked_regimes", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        # Control commands carry scalars only, so a list arrives as "a,b".
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value


@dataclass(slots=True)
class _MlIndicators:
    last_bar: BarClosed | None = None


_DIRECTIONS = {
    PredictedClass.LONG: SignalDirection.LONG,
    PredictedClass.SHORT: SignalDirection.SHORT,
}


class MlDrivenStrategy(BracketStrategy[MlDrivenParameters]):
    """Enter on confident model predictions in the regimes it is allowed to trade."""

    name = "ml_driven"
    parameters_type = MlDrivenParameters

    def __init__(self, parameters: MlDrivenParameters | None = None) -> None:
        super().__init__(parameters or MlDrivenParameters())

    def _new_indicators(self) -> _MlIndicators:
        return _MlIndicators()

    def _update(self, indicators: _MlIndicators, bar: BarClosed) -> Signal | None:
        indicators.last_bar = bar
        return None  # entries come from predictions

    def regime_allows(self, regime: str | None) -> bool:
        """Return True when the regime passes the allowed/blocked filter."""
        values = self.parameters
        if regime is None:
            return not values.require_regime and not values.allowed_regimes
        if regime in values.blocked_regimes:
            return False
        return not values.allowed_regimes or regime in values.allowed_regimes

    def adopt_plan(self, plan: TradePlan) -> bool:
        """Trade ``plan``'s exits from now on; False when its ATR length is not this one's."""
        values = self.parameters
        if plan.atr_period != values.atr_period:
            return False
        wanted = {
            "stop_atr": plan.stop_loss_atr,
            "take_profit_atr": plan.take_profit_atr,
            "max_holding_bars": plan.max_horizon_bars,
        }
        if any(getattr(values, name) != value for name, value in wanted.items()):
            self.parameters = values.model_copy(update=wanted)
        return True

    def signal_for(self, prediction: PredictionMade) -> Signal | None:
        """Return the entry a prediction calls for under its plan, ignoring the bar it refers to."""
        direction = _DIRECTIONS.get(prediction.predicted_class)
        if direction is None:
            return None
        plan = prediction.plan
        probability = prediction.probabilities[prediction.predicted_class]
        if probability < plan.probability_threshold:
            return None
        if not self.regime_allows(prediction.regime):
            return None
        reason = (
            f"model {prediction.model_id} predicts {prediction.predicted_class.value} "
            f"with probability {probability:.3f} >= {plan.probability_threshold:g} "
            f"in regime {prediction.regime or 'unknown'} (plan: {plan.describe()})"
        )
        return Signal(direction, probability, reason, win_probability=probability)

    def on_prediction(self, prediction: PredictionMade) -> list[OrderIntent]:
        """Open a trade by the model's plan on a fresh, confident prediction the regime allows."""
        book = self._symbols.get(prediction.symbol)
        if book is None:
            return []
        last_bar = book.indicators.last_bar
        if last_bar is None or last_bar.closed_at != prediction.bar_closed_at:
            return []  # stale, or ahead of the bars this strategy has seen
        if last_bar.timeframe is not prediction.timeframe:
            return []
        signal = self.signal_for(prediction)
        if signal is None or book.trade is not None:
            return []
        if not self.adopt_plan(prediction.plan):
            return []  # the plan's ATR is not the one this strategy measures: not its plan
        return self.enter(last_bar, signal)
