"""ML-driven: trade the inference service's class probabilities, filtered by regime.

Bars keep ATR and the open trade current; a ``PredictionMade`` for the symbol's latest bar
opens a trade when the predicted class is LONG or SHORT, its probability is at least
``confidence_threshold`` and the prediction's regime passes the filter (in
``allowed_regimes`` when that is not empty, and never in ``blocked_regimes``). Predictions for
an older bar, or arriving before their bar, are ignored. Exits: stop 2 ATR(14), target 3 ATR;
risk 0.5-2 % per trade. The signal's confidence is the model's probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, field_validator

from tai_events.market import BarClosed
from tai_events.ml import PredictedClass, PredictionMade
from tai_events.orders import SignalDirection, TradingStyle
from tai_strategy.base import OrderIntent
from tai_strategy.bracket import BracketParameters, BracketStrategy, Signal


class MlDrivenParameters(BracketParameters):
    """ML-driven defaults (the documented live defaults)."""

    RISK_RANGE_PCT: ClassVar[tuple[float, float]] = (0.5, 2.0)
    STYLE: ClassVar[TradingStyle | None] = TradingStyle.INTRADAY

    risk_per_trade_pct: float = Field(default=1.0, description="0.5-2 % of equity per trade")
    max_holding_bars: int = Field(default=24, ge=0)
    confidence_threshold: float = Field(
        default=0.6, gt=0, le=1, description="minimum probability of the traded class"
    )
    allowed_regimes: tuple[str, ...] = Field(
        default=(), description="trade only in these regimes; empty = any (comma-separated ok)"
    )
    blocked_regimes: tuple[str, ...] = Field(
        default=(), description="never trade in these regimes (comma-separated ok)"
    )
    require_regime: bool = Field(default=False, description="skip predictions that carry no regime")

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

    def signal_for(self, prediction: PredictionMade) -> Signal | None:
        """Return the entry a prediction calls for, ignoring the bar it refers to."""
        direction = _DIRECTIONS.get(prediction.predicted_class)
        if direction is None:
            return None
        probability = prediction.probabilities[prediction.predicted_class]
        if probability < self.parameters.confidence_threshold:
            return None
        if not self.regime_allows(prediction.regime):
            return None
        reason = (
            f"model {prediction.model_id} predicts {prediction.predicted_class.value} "
            f"with probability {probability:.3f} >= {self.parameters.confidence_threshold:g} "
            f"in regime {prediction.regime or 'unknown'}"
        )
        return Signal(direction, probability, reason, win_probability=probability)

    def on_prediction(self, prediction: PredictionMade) -> list[OrderIntent]:
        """Open a trade when a fresh, confident prediction passes the regime filter."""
        book = self._symbols.get(prediction.symbol)
        if book is None:
            return []
        last_bar = book.indicators.last_bar
        if last_bar is None or last_bar.closed_at != prediction.bar_closed_at:
            return []  # stale, or ahead of the bars this strategy has seen
        if last_bar.timeframe is not prediction.timeframe:
            return []
        signal = self.signal_for(prediction)
        if signal is None:
            return []
        return self.enter(last_bar, signal)
