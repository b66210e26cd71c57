"""ML-driven strategy: confident predictions for the latest bar, filtered by regime (pure)."""

from __future__ import annotations

import pytest

from tai_events import Side
from tai_events.market import BarClosed, Timeframe
from tai_events.ml import DEFAULT_TRADE_PLAN, PredictedClass, PredictionMade, TradePlan
from tai_strategy.ml_driven import MlDrivenParameters, MlDrivenStrategy
from tests.factories import make_bar


def _warm(strategy: MlDrivenStrategy, count: int = 20) -> BarClosed:
    bars = [make_bar(index, 1.10 + 0.001 * (index % 3)) for index in range(count)]
    for bar in bars:
        strategy.on_bar(bar)
    return bars[-1]


def _prediction(
    bar: BarClosed,
    predicted: PredictedClass = PredictedClass.LONG,
    probability: float = 0.7,
    regime: str | None = "trend",
    plan: TradePlan = DEFAULT_TRADE_PLAN,
) -> PredictionMade:
    others = [item for item in PredictedClass if item is not predicted]
    rest = (1.0 - probability) / 2
    return PredictionMade(
        symbol=bar.symbol,
        timeframe=bar.timeframe,
        bar_closed_at=bar.closed_at,
        model_id="mdl-test",
        feature_set_version="v1",
        probabilities={predicted: probability, others[0]: rest, others[1]: rest},
        predicted_class=predicted,
        regime=regime,
        plan=plan,
    )


def test_confident_long_prediction_buys_with_the_probability_as_confidence() -> None:
    # Arrange
    strategy = MlDrivenStrategy()
    bar = _warm(strategy)
    # Act
    (intent,) = strategy.on_prediction(_prediction(bar, probability=0.72))
    # Assert
    assert intent.side is Side.BUY
    assert intent.confidence == pytest.approx(0.72)
    assert intent.reference_price == bar.close
    assert intent.stop_loss is not None
    assert intent.stop_loss < bar.close
    assert intent.take_profit is not None
    assert intent.take_profit > bar.close
    assert "model mdl-test predicts LONG with probability 0.720" in intent.reason
    assert "regime trend" in intent.reason


def test_confident_short_prediction_sells() -> None:
    strategy = MlDrivenStrategy()
    bar = _warm(strategy)
    (intent,) = strategy.on_prediction(_prediction(bar, PredictedClass.SHORT, 0.8))
    assert intent.side is Side.SELL


PLAN = TradePlan(
    take_profit_atr=1.5, stop_loss_atr=1.0, max_horizon_bars=6, probability_threshold=0.75
)


def test_prediction_below_its_plans_threshold_is_ignored() -> None:
    strategy = MlDrivenStrategy()
    bar = _warm(strategy)
    assert strategy.on_prediction(_prediction(bar, probability=0.74, plan=PLAN)) == []
    assert len(strategy.on_prediction(_prediction(bar, probability=0.76, plan=PLAN))) == 1


def test_the_trade_is_the_models_plan_whatever_the_strategy_was_configured_with() -> None:
    # Arrange: parameters that disagree with the plan the model was trained for
    strategy = MlDrivenStrategy(
        MlDrivenParameters(stop_atr=5.0, take_profit_atr=9.0, max_holding_bars=100)
    )
    bar = _warm(strategy)
    atr_value = strategy._book(bar.symbol).atr.value
    assert atr_value is not None
    # Act
    (intent,) = strategy.on_prediction(_prediction(bar, probability=0.8, plan=PLAN))
    # Assert: the stop, the target and the time exit are the plan's, never the parameters'
    assert intent.stop_loss == pytest.approx(bar.close - PLAN.stop_loss_atr * atr_value)
    assert intent.take_profit == pytest.approx(bar.close + PLAN.take_profit_atr * atr_value)
    assert strategy.parameters.max_holding_bars == PLAN.max_horizon_bars
    assert "plan: target 1.5 ATR / stop 1 ATR(14) / 6 bars / p >= 0.75" in intent.reason
    held = [make_bar(20 + step, bar.close) for step in range(PLAN.max_horizon_bars)]
    exits = [intent for later in held for intent in strategy.on_bar(later)]
    assert [exit_.side for exit_ in exits] == [Side.SELL]  # closed at the plan's horizon


def test_a_plan_measured_with_another_atr_length_is_not_traded() -> None:
    strategy = MlDrivenStrategy()
    bar = _warm(strategy)
    other = PLAN.model_copy(update={"atr_period": 20})
    assert strategy.on_prediction(_prediction(bar, probability=0.9, plan=other)) == []


def test_a_threshold_of_its_own_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="trade plan"):
        MlDrivenParameters.model_validate({"confidence_threshold": 0.6})


def test_neutral_prediction_is_ignored() -> None:
    strategy = MlDrivenStrategy()
    bar = _warm(strategy)
    assert strategy.on_prediction(_prediction(bar, PredictedClass.NEUTRAL, 0.9)) == []


def test_blocked_regime_is_not_traded_and_allowed_list_is_exclusive() -> None:
    blocked = MlDrivenStrategy(MlDrivenParameters.model_validate({"blocked_regimes": "volatile"}))
    allowed = MlDrivenStrategy(
        MlDrivenParameters.model_validate({"allowed_regimes": "trend, range"})
    )
    bar = _warm(blocked)
    _warm(allowed)
    assert blocked.on_prediction(_prediction(bar, regime="volatile")) == []
    assert allowed.on_prediction(_prediction(bar, regime="volatile")) == []
    assert allowed.parameters.allowed_regimes == ("trend", "range")
    assert len(allowed.on_prediction(_prediction(bar, regime="range"))) == 1


def test_prediction_for_an_older_bar_is_stale() -> None:
    strategy = MlDrivenStrategy()
    bar = _warm(strategy)
    strategy.on_bar(make_bar(20, 1.101))
    assert strategy.on_prediction(_prediction(bar)) == []


def test_prediction_for_another_timeframe_or_unseen_symbol_is_ignored() -> None:
    strategy = MlDrivenStrategy()
    bar = _warm(strategy)
    other = make_bar(19, bar.close, symbol="GBPUSD")
    assert strategy.on_prediction(_prediction(other)) == []
    minute = make_bar(0, 1.1, timeframe=Timeframe.M1)
    assert strategy.on_prediction(_prediction(minute)) == []


def test_a_redelivered_prediction_opens_no_second_trade() -> None:
    strategy = MlDrivenStrategy()
    bar = _warm(strategy)
    prediction = _prediction(bar)
    assert len(strategy.on_prediction(prediction)) == 1
    assert strategy.on_prediction(prediction) == []
