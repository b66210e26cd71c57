"""The moving-average crossover strategy (pure)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tai_events import Side, SignalDirection
from tai_strategy.sma_cross import SmaCrossParameters, SmaCrossStrategy
from tests.factories import make_bar

FALLING_THEN_RISING = [10, 9, 8, 7, 6, 5, 6, 7, 8, 9, 10, 11, 12]
PARAMETERS = SmaCrossParameters(fast=2, slow=4, quantity=100)


def _run(strategy: SmaCrossStrategy, closes: list[float], start: int = 0) -> list:  # type: ignore[type-arg]
    intents = []
    for offset, close in enumerate(closes):
        intents.extend(strategy.on_bar(make_bar(start + offset, close)))
    return intents


def test_golden_cross_buys_the_configured_quantity() -> None:
    # Arrange
    strategy = SmaCrossStrategy(PARAMETERS)
    # Act
    intents = _run(strategy, FALLING_THEN_RISING)
    # Assert
    assert [(intent.side, intent.quantity) for intent in intents] == [(Side.BUY, 100)]
    assert "golden cross" in intents[0].reason
    assert strategy.direction("EURUSD") is SignalDirection.LONG


def test_death_cross_after_a_long_reverses_with_twice_the_size() -> None:
    strategy = SmaCrossStrategy(PARAMETERS)
    intents = _run(strategy, [*FALLING_THEN_RISING, 11, 9, 7, 5])
    assert [(intent.side, intent.quantity) for intent in intents] == [
        (Side.BUY, 100),
        (Side.SELL, 200),
    ]


def test_no_order_before_the_slow_average_is_warm() -> None:
    strategy = SmaCrossStrategy(PARAMETERS)
    assert _run(strategy, [1, 2, 3]) == []


def test_redelivered_bar_produces_no_second_order() -> None:
    # Arrange
    strategy = SmaCrossStrategy(PARAMETERS)
    bars = [make_bar(index, close) for index, close in enumerate(FALLING_THEN_RISING)]
    first = [intent for bar in bars for intent in strategy.on_bar(bar)]
    # Act: the whole stream again (a redelivery after a reconnect)
    second = [intent for bar in bars for intent in strategy.on_bar(bar)]
    # Assert
    assert len(first) == 1
    assert second == []


def test_warm_up_rebuilds_the_same_state_as_a_live_run() -> None:
    # Arrange: one strategy saw the first bars live, another only warmed up on them
    closes = [*FALLING_THEN_RISING, 11, 9, 7, 5, 6, 8, 10]
    live = SmaCrossStrategy(PARAMETERS)
    restarted = SmaCrossStrategy(PARAMETERS)
    split = 12
    _run(live, closes[:split])
    for index, close in enumerate(closes[:split]):
        restarted.warm_up(make_bar(index, close))
    # Act
    live_rest = _run(live, closes[split:], start=split)
    restarted_rest = _run(restarted, closes[split:], start=split)
    # Assert
    assert live_rest == restarted_rest
    assert live_rest


def test_fast_must_be_shorter_than_slow() -> None:
    with pytest.raises(ValidationError, match="shorter"):
        SmaCrossParameters(fast=30, slow=10)
