"""Intraday trend following and swing with higher-timeframe confirmation (pure)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from pydantic import ValidationError

from tai_events import Side, SignalDirection
from tai_events.market import BarClosed, Timeframe
from tai_ingestion.bars import BarAggregator
from tai_quant.indicators import atr
from tai_strategy.base import OrderIntent
from tai_strategy.intraday import IntradayParameters, IntradayStrategy
from tai_strategy.swing import SwingParameters, SwingStrategy
from tests.factories import make_bar

# An uptrend with deep periodic pullbacks: 100 + 0.1 i + 2 sin(i / 6) on 15-minute bars.
INTRADAY_UP = [100 + 0.1 * index + 2.0 * math.sin(index / 6.0) for index in range(200)]
INTRADAY_SIGNAL_BAR = 147
# A steeper, wider swing on 4-hour bars: 100 + 0.2 i + 5 sin(i / 6).
SWING_UP = [100 + 0.2 * index + 5.0 * math.sin(index / 6.0) for index in range(200)]
SWING_SIGNAL_BAR = 147


def _bars(closes: list[float], timeframe: Timeframe) -> list[BarClosed]:
    return [make_bar(index, close, timeframe=timeframe) for index, close in enumerate(closes)]


def _with_daily_bars(
    strategy: SwingStrategy, bar: BarClosed, daily: BarAggregator
) -> list[OrderIntent]:
    """Take a bar as the service does: on_bar, then the daily bar it completed (if any)."""
    intents = strategy.on_bar(bar)
    for higher in daily.on_bar(bar):
        strategy.on_higher_bar(higher)
    return intents


def _first_signal(
    strategy: IntradayStrategy | SwingStrategy, bars: list[BarClosed]
) -> tuple[int, OrderIntent]:
    daily = BarAggregator("EURUSD", Timeframe.D1, source="test")
    for index, bar in enumerate(bars):
        if isinstance(strategy, SwingStrategy):
            intents = _with_daily_bars(strategy, bar, daily)
        else:
            intents = strategy.on_bar(bar)
        if intents:
            return index, intents[0]
    raise AssertionError("no signal")


def _atr_at(bars: list[BarClosed], index: int) -> float:
    frame = pd.DataFrame([bar.model_dump() for bar in bars])
    return float(atr(frame["high"], frame["low"], frame["close"], 14).iloc[index])


def test_intraday_joins_the_uptrend_when_the_macd_histogram_turns_up() -> None:
    # Arrange
    bars = _bars(INTRADAY_UP, Timeframe.M15)
    # Act
    index, intent = _first_signal(IntradayStrategy(), bars)
    # Assert
    assert index == INTRADAY_SIGNAL_BAR
    average_range = _atr_at(bars, index)
    assert intent.side is Side.BUY
    assert intent.target is SignalDirection.LONG
    assert intent.stop_loss == pytest.approx(intent.reference_price - 1.5 * average_range)
    assert intent.take_profit == pytest.approx(intent.reference_price + 3.0 * average_range)
    assert intent.quantity is None  # risk sizes it from the account
    assert intent.risk_budget_pct == 1.5
    assert intent.stop_loss == pytest.approx(intent.reference_price - 1.5 * average_range)
    assert 0.5 < intent.confidence <= 0.9
    assert "EMA(20)" in intent.reason
    assert "ADX(14)" in intent.reason
    assert "MACD histogram crossed above zero" in intent.reason


def test_intraday_sells_the_mirrored_downtrend_at_the_same_bar() -> None:
    bars = _bars([300.0 - close for close in INTRADAY_UP], Timeframe.M15)
    index, intent = _first_signal(IntradayStrategy(), bars)
    assert index == INTRADAY_SIGNAL_BAR
    assert intent.side is Side.SELL
    assert intent.stop_loss is not None
    assert intent.stop_loss > intent.reference_price


def test_intraday_demands_a_strong_trend() -> None:
    strategy = IntradayStrategy(IntradayParameters(min_adx=95.0))
    assert all(strategy.on_bar(bar) == [] for bar in _bars(INTRADAY_UP, Timeframe.M15))


def test_intraday_risk_band_is_one_to_two_percent() -> None:
    with pytest.raises(ValidationError):
        IntradayParameters(risk_per_trade_pct=2.5)
    assert IntradayParameters().risk_per_trade_pct == 1.5


def test_swing_buys_a_cross_confirmed_by_the_daily_uptrend() -> None:
    # Arrange
    strategy = SwingStrategy()
    bars = _bars(SWING_UP, Timeframe.H4)
    # Act
    index, intent = _first_signal(strategy, bars)
    # Assert
    assert index == SWING_SIGNAL_BAR
    assert strategy.higher_trend("EURUSD") is SignalDirection.LONG
    average_range = _atr_at(bars, index)
    assert intent.side is Side.BUY
    assert intent.stop_loss == pytest.approx(intent.reference_price - 2.0 * average_range)
    assert intent.take_profit == pytest.approx(intent.reference_price + 4.0 * average_range)
    assert intent.quantity is None  # risk sizes it from the account
    assert intent.risk_budget_pct == 2.5
    assert intent.stop_loss == pytest.approx(intent.reference_price - 2.0 * average_range)
    assert "1d trend LONG" in intent.reason
    assert "EMA(10) crossed above EMA(30)" in intent.reason


def test_swing_without_higher_timeframe_confirmation_does_not_trade() -> None:
    # A 60-day EMA on the daily bars never warms up in 200 four-hour bars (33 days).
    strategy = SwingStrategy(SwingParameters(higher_period=60))
    daily = BarAggregator("EURUSD", Timeframe.D1, source="test")
    bars = _bars(SWING_UP, Timeframe.H4)
    assert all(_with_daily_bars(strategy, bar, daily) == [] for bar in bars)
    assert strategy.higher_trend("EURUSD") is SignalDirection.FLAT


def test_swing_without_daily_bars_has_no_trend_and_does_not_trade() -> None:
    # The higher trend comes from the bars the system builds, never from its own bucketing.
    strategy = SwingStrategy()
    assert all(strategy.on_bar(bar) == [] for bar in _bars(SWING_UP, Timeframe.H4))
    assert strategy.higher_trend("EURUSD") is SignalDirection.FLAT


def test_swing_higher_trend_is_built_from_completed_daily_bars() -> None:
    # Six 4-hour bars make a day: after 21 days of a steady rise the daily EMA(20) exists
    # and the trend is up.
    strategy = SwingStrategy()
    daily = BarAggregator("EURUSD", Timeframe.D1, source="test")
    for bar in _bars([100.0 + index for index in range(6 * 22)], Timeframe.H4):
        _with_daily_bars(strategy, bar, daily)
    assert strategy.higher_trend("EURUSD") is SignalDirection.LONG


def test_swing_risk_band_is_two_to_three_percent() -> None:
    with pytest.raises(ValidationError):
        SwingParameters(risk_per_trade_pct=1.0)
