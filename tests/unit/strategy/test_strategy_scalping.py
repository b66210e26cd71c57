"""Scalping: Bollinger/RSI mean reversion with MACD and volume confirmations (pure)."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from tai_events import Side, SignalDirection
from tai_events.market import BarClosed, Timeframe
from tai_quant.indicators import atr
from tai_strategy.base import OrderIntent
from tai_strategy.scalping import ScalpingParameters, ScalpingStrategy
from tests.factories import make_bar

# Forty quiet bars alternating 100.0 / 100.2, then four falling closes: the fourth closes
# below the lower band with RSI(14) just under 30.
FALLING = [100.0 + (0.2 if index % 2 else 0.0) for index in range(40)] + [99.6, 99.2, 98.8, 98.4]
SIGNAL_BAR = 43


def _bars(closes: list[float], volumes: dict[int, float] | None = None) -> list[BarClosed]:
    bars = []
    for index, close in enumerate(closes):
        bar = make_bar(index, close, timeframe=Timeframe.M5)
        volume = (volumes or {}).get(index, 1000.0)
        bars.append(bar.model_copy(update={"volume": volume}))
    return bars


def _run(strategy: ScalpingStrategy, bars: list[BarClosed]) -> dict[int, list[OrderIntent]]:
    return {index: out for index, bar in enumerate(bars) if (out := strategy.on_bar(bar))}


def _atr_at(bars: list[BarClosed], index: int, period: int = 14) -> float:
    frame = pd.DataFrame([bar.model_dump() for bar in bars])
    return float(atr(frame["high"], frame["low"], frame["close"], period).iloc[index])


def test_close_below_the_lower_band_with_oversold_rsi_buys_with_atr_bracket() -> None:
    # Arrange
    strategy = ScalpingStrategy(ScalpingParameters(min_confirmations=0))
    bars = _bars(FALLING)
    # Act
    signals = _run(strategy, bars)
    # Assert
    assert list(signals) == [SIGNAL_BAR]
    (intent,) = signals[SIGNAL_BAR]
    close, average_range = FALLING[SIGNAL_BAR], _atr_at(bars, SIGNAL_BAR)
    assert intent.side is Side.BUY
    assert intent.target is SignalDirection.LONG
    assert intent.stop_loss == pytest.approx(close - 2 * average_range)
    assert intent.take_profit == pytest.approx(close + 3 * average_range)
    # 0.75 % of 100,000 lost at a 2-ATR stop, in whole units.
    assert intent.quantity is None  # risk sizes it from the account
    assert intent.risk_budget_pct == 0.75
    assert intent.stop_loss == pytest.approx(intent.reference_price - 2 * average_range)
    assert intent.confidence == 0.5
    assert "below the lower Bollinger(20, 2) band" in intent.reason
    assert "RSI(14)" in intent.reason
    assert "volume not above" in intent.reason


def test_setup_without_a_confirmation_is_not_traded_by_default() -> None:
    strategy = ScalpingStrategy()  # min_confirmations = 1
    assert _run(strategy, _bars(FALLING)) == {}


def test_volume_spike_confirms_the_setup_and_raises_confidence() -> None:
    strategy = ScalpingStrategy()
    signals = _run(strategy, _bars(FALLING, volumes={SIGNAL_BAR: 1600.0}))
    (intent,) = signals[SIGNAL_BAR]
    assert intent.confidence == 0.75
    assert "volume above 1.5x its 20-bar average" in intent.reason


def test_volume_at_the_multiple_is_not_a_spike() -> None:
    strategy = ScalpingStrategy()
    assert _run(strategy, _bars(FALLING, volumes={SIGNAL_BAR: 1500.0})) == {}


def test_mirror_image_sells_above_the_upper_band() -> None:
    strategy = ScalpingStrategy(ScalpingParameters(min_confirmations=0))
    signals = _run(strategy, _bars([200.0 - close for close in FALLING]))
    (intent,) = signals[SIGNAL_BAR]
    assert intent.side is Side.SELL
    assert intent.stop_loss is not None
    assert intent.take_profit is not None
    assert intent.stop_loss > intent.reference_price > intent.take_profit
    assert "above the upper Bollinger" in intent.reason


def test_no_second_entry_while_in_a_trade_and_a_stale_trade_is_closed() -> None:
    # Arrange: the price stays low (no stop or target touched) after the entry.
    parameters = ScalpingParameters(min_confirmations=0, max_holding_bars=5)
    strategy = ScalpingStrategy(parameters)
    closes = [*FALLING, *([98.4] * 6)]
    # Act
    signals = _run(strategy, _bars(closes))
    # Assert
    assert list(signals) == [SIGNAL_BAR, SIGNAL_BAR + 5]
    (exit_intent,) = signals[SIGNAL_BAR + 5]
    assert exit_intent.side is Side.SELL
    assert exit_intent.target is SignalDirection.FLAT
    assert exit_intent.reduce_only
    assert exit_intent.quantity is None
    assert exit_intent.entry_signal_time == _bars(closes)[SIGNAL_BAR].closed_at
    assert "held 5 bars" in exit_intent.reason
    assert strategy.open_trade("EURUSD") is None


def test_trade_ends_when_a_bar_touches_the_stop() -> None:
    strategy = ScalpingStrategy(ScalpingParameters(min_confirmations=0))
    bars = _bars(FALLING)
    _run(strategy, bars)
    trade = strategy.open_trade("EURUSD")
    assert trade is not None
    crash = make_bar(SIGNAL_BAR + 1, trade.stop_loss - 0.5, timeframe=Timeframe.M5)
    assert strategy.on_bar(crash) == []
    assert strategy.open_trade("EURUSD") is None


def test_redelivered_bar_is_never_traded_twice() -> None:
    strategy = ScalpingStrategy(ScalpingParameters(min_confirmations=0))
    bars = _bars(FALLING)
    _run(strategy, bars)
    assert strategy.on_bar(bars[SIGNAL_BAR]) == []


@pytest.mark.parametrize("risk", [0.4, 1.5])
def test_risk_per_trade_outside_half_to_one_percent_is_refused(risk: float) -> None:
    with pytest.raises(ValidationError, match="risk_per_trade_pct"):
        ScalpingParameters(risk_per_trade_pct=risk)


def test_documented_defaults() -> None:
    parameters = ScalpingParameters()
    assert (parameters.bollinger_period, parameters.bollinger_std) == (20, 2.0)
    assert (parameters.rsi_period, parameters.rsi_oversold, parameters.rsi_overbought) == (
        14,
        30.0,
        70.0,
    )
    assert (parameters.macd_fast, parameters.macd_slow, parameters.macd_signal) == (12, 26, 9)
    assert (parameters.volume_multiple, parameters.volume_period) == (1.5, 20)
    assert (parameters.stop_atr, parameters.take_profit_atr, parameters.atr_period) == (2, 3, 14)
