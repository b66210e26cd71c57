"""The strategy book: regime weights, enabling and re-parameterising at run time (pure)."""

from __future__ import annotations

import pytest

from tai_events.market import BarClosed, Timeframe
from tai_events.ml import DEFAULT_TRADE_PLAN, PredictedClass, PredictionMade
from tai_strategy.book import DEFAULT_REGIME_WEIGHTS, InvalidConfigurationError, StrategyBook
from tai_strategy.scalping import ScalpingStrategy
from tai_strategy.sma_cross import SmaCrossStrategy
from tests.factories import make_bar

FALLING = [100.0 + (0.2 if index % 2 else 0.0) for index in range(40)] + [99.6, 99.2, 98.8, 98.4]
SIGNAL_BAR = 43


def _bars() -> list[BarClosed]:
    return [make_bar(index, close, timeframe=Timeframe.M5) for index, close in enumerate(FALLING)]


def _regime(bar: BarClosed, regime: str) -> PredictionMade:
    return PredictionMade(
        symbol=bar.symbol,
        timeframe=bar.timeframe,
        bar_closed_at=bar.closed_at,
        model_id="mdl-test",
        feature_set_version="v1",
        probabilities={
            PredictedClass.LONG: 0.2,
            PredictedClass.SHORT: 0.2,
            PredictedClass.NEUTRAL: 0.6,
        },
        predicted_class=PredictedClass.NEUTRAL,
        regime=regime,
        plan=DEFAULT_TRADE_PLAN,
    )


def _scalping_book(weights: dict[str, float] | None = None) -> StrategyBook:
    return StrategyBook.from_names(
        ["scalping"],
        {"scalping": {"min_confirmations": 0}},
        {"scalping": weights} if weights is not None else None,
    )


def _orders(book: StrategyBook, regime: str | None = None) -> list[tuple[int, str, float]]:
    found = []
    for index, bar in enumerate(_bars()):
        if regime is not None and index == 0:
            book.on_prediction(_regime(bar, regime))
        found += [(index, name, intent.risk_budget_pct or 0.0) for name, intent in book.on_bar(bar)]
    return found


def test_entry_size_scales_with_the_weight_of_the_current_regime() -> None:
    # Arrange: scalping weighs a range 1.0 and a trend 0.5 by default.
    assert DEFAULT_REGIME_WEIGHTS["scalping"]["range"] == 1.0
    # Act
    in_range = _orders(_scalping_book(), "range")
    in_trend = _orders(_scalping_book(), "trend")
    # Assert
    ((index, name, full),) = in_range
    ((_, _, half),) = in_trend
    assert (index, name) == (SIGNAL_BAR, "scalping")
    assert half == pytest.approx(full // 2, abs=1)


def test_zero_weight_stops_new_entries_in_that_regime() -> None:
    assert _orders(_scalping_book({"volatile": 0.0}), "volatile") == []


def test_unknown_regime_or_none_yet_weighs_one() -> None:
    assert _orders(_scalping_book(), "unheard-of")[0][2] == _orders(_scalping_book())[0][2]


def test_disabled_strategy_stays_warm_but_does_not_trade() -> None:
    # Arrange
    book = _scalping_book()
    book.configure("scalping", False, {})
    bars = _bars()
    # Act
    before = [book.on_bar(bar) for bar in bars[:SIGNAL_BAR]]
    book.configure("scalping", True, {})
    after = book.on_bar(bars[SIGNAL_BAR])
    # Assert: indicators were warm, so the re-enabled strategy trades at once.
    assert all(not orders for orders in before)
    assert [name for name, _ in after] == ["scalping"]


def test_reparameterised_strategy_is_rebuilt_and_rewarmed_from_recent_bars() -> None:
    # Arrange
    book = _scalping_book()
    bars = _bars()
    for bar in bars[:SIGNAL_BAR]:
        book.on_bar(bar)
    old = book.slots["scalping"].strategy
    # Act
    slot = book.configure("scalping", None, {"risk_per_trade_pct": 1.0, "weight.trend": 0.25})
    orders = book.on_bar(bars[SIGNAL_BAR])
    # Assert
    assert slot.strategy is not old
    assert isinstance(slot.strategy, ScalpingStrategy)
    assert slot.strategy.parameters.risk_per_trade_pct == 1.0
    assert slot.strategy.parameters.min_confirmations == 0  # kept from before
    assert slot.weights["trend"] == 0.25
    assert slot.status()["weight.trend"] == 0.25
    assert [name for name, _ in orders] == ["scalping"]


def test_invalid_parameters_are_refused_and_leave_the_strategy_unchanged() -> None:
    book = _scalping_book()
    before = book.slots["scalping"].parameters
    with pytest.raises(InvalidConfigurationError, match="risk_per_trade_pct"):
        book.configure("scalping", None, {"risk_per_trade_pct": 5.0})
    with pytest.raises(InvalidConfigurationError, match="weight"):
        book.configure("scalping", None, {"weight.trend": -1.0})
    assert book.slots["scalping"].parameters is before


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(InvalidConfigurationError, match="unknown strategy"):
        _scalping_book().configure("martingale", True, {})


def test_a_strategy_not_configured_at_start_can_be_enabled_at_run_time() -> None:
    book = StrategyBook.from_names(["sma_cross"])
    slot = book.configure("scalping", True, {"min_confirmations": 0})
    assert slot.enabled
    assert isinstance(slot.strategy, ScalpingStrategy)
    assert slot.strategy.parameters.min_confirmations == 0


def test_sma_cross_alone_consumes_no_predictions() -> None:
    book = StrategyBook.from_names(["sma_cross"], {"sma_cross": {"fast": 2, "slow": 4}})
    assert isinstance(book.slots["sma_cross"].strategy, SmaCrossStrategy)
    assert not book.consumes_predictions
    assert _scalping_book().consumes_predictions
