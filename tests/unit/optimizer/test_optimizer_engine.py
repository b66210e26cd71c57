"""Event-driven engine: next-open fills, live default sizing, risk, brackets, costs, sizers."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_events.market import BarClosed, Timeframe
from tai_events.orders import Side, SignalDirection
from tai_events.risk import TradingState
from tai_optimizer.backtest.broker import Bracket, ExitReason, bracket_trigger
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import BacktestConfig, BacktestResult, EventDrivenBacktester
from tai_optimizer.backtest.sizing import (
    AllInWholeUnits,
    FixedFraction,
    FractionalKelly,
    SizingContext,
    TradeRecord,
)
from tai_optimizer.backtest.tape import BarFeed, BarTape
from tai_strategy.base import OrderIntent
from tai_strategy.sma_cross import CrossingWindows, SmaCrossParameters, SmaCrossStrategy

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def bar(
    index: int, open_: float, high: float, low: float, close: float, symbol: str = "TEST"
) -> BarClosed:
    opened = T0 + timedelta(hours=index)
    return BarClosed(
        symbol=symbol,
        timeframe=Timeframe.H1,
        opened_at=opened,
        closed_at=opened + timedelta(hours=1),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=1.0,
        source="test",
    )


def flat_bars(prices: Sequence[float], symbol: str = "TEST") -> list[BarClosed]:
    return [bar(i, p, p, p, p, symbol) for i, p in enumerate(prices)]


@dataclass
class ScriptedStrategy:
    """Emits the given intents after the bar with the given index."""

    script: dict[int, OrderIntent]
    name: str = "scripted"
    seen: list[int] = field(default_factory=list)

    def on_bar(self, current: BarClosed) -> list[OrderIntent]:
        self.seen.append(len(self.seen))
        intent = self.script.get(len(self.seen) - 1)
        return [intent] if intent else []

    def warm_up(self, current: BarClosed) -> None:
        self.seen.append(len(self.seen))


def buy(quantity: float = 1.0, **extra: object) -> OrderIntent:
    return OrderIntent("TEST", Side.BUY, quantity, 100.0, 1.0, "test", **extra)  # type: ignore[arg-type]


def test_order_fills_at_the_next_bars_open_with_commission() -> None:
    # Arrange
    bars = [bar(0, 100, 101, 99, 100), bar(1, 103, 104, 102, 103.5), bar(2, 104, 104, 104, 104)]
    costs = CostModel(commission_rate=0.01, commission_per_unit=0.5, commission_per_trade=2.0)
    engine = EventDrivenBacktester(
        ScriptedStrategy({0: buy(10)}), BacktestConfig(cash=10_000, costs=costs)
    )
    # Act
    result = engine.run(bars)
    # Assert
    (fill,) = result.fills
    assert (fill.bar_index, fill.price) == (1, 103.0)
    assert fill.commission == pytest.approx(2.0 + 10 * 103 * 0.01 + 10 * 0.5)
    assert result.final_equity == pytest.approx(10_000 - fill.commission + 10 * (104 - 103))


def test_spread_and_slippage_make_buys_dearer_and_sells_cheaper() -> None:
    costs = CostModel(spread=0.2, slippage_bps=10)
    assert costs.fill_price(1, 100.0) == pytest.approx(100.0 + 0.1 + 0.1)
    assert costs.fill_price(-1, 100.0) == pytest.approx(100.0 - 0.1 - 0.1)


def test_default_sizing_trades_the_strategys_quantity_and_reverses_with_twice_it() -> None:
    # Arrange: down, then up (golden cross), then down (death cross).
    prices = [10, 9, 8, 7, 6, 7, 8, 9, 10, 11, 10, 9, 8, 7, 6, 5]
    strategy = SmaCrossStrategy(SmaCrossParameters(fast=2, slow=4, quantity=5))
    # Act
    result = EventDrivenBacktester(strategy, BacktestConfig(cash=1_000)).run(flat_bars(prices))
    # Assert
    assert [(fill.side, fill.quantity) for fill in result.fills] == [(Side.BUY, 5), (Side.SELL, 10)]
    assert result.final_positions == {"TEST": -5}


def test_orders_are_rejected_by_risk_when_trading_is_halted() -> None:
    config = BacktestConfig(cash=1_000, trading_state=TradingState.HALTED)
    result = EventDrivenBacktester(ScriptedStrategy({0: buy()}), config).run(flat_bars([100, 100]))
    assert result.fills == []
    assert [(item.stage, item.rule) for item in result.rejections] == [("risk", "trading_state")]


def test_order_beyond_margin_is_refused_by_the_broker() -> None:
    config = BacktestConfig(cash=1_000)
    result = EventDrivenBacktester(ScriptedStrategy({0: buy(50)}), config).run(
        flat_bars([100, 100])
    )
    assert [(item.stage, item.rule) for item in result.rejections] == [("broker", "margin")]


def test_leverage_lets_the_same_order_through() -> None:
    config = BacktestConfig(cash=1_000, leverage=10)
    result = EventDrivenBacktester(ScriptedStrategy({0: buy(50)}), config).run(
        flat_bars([100, 100])
    )
    assert len(result.fills) == 1


def test_stop_loss_wins_when_a_bar_touches_both_stop_and_target() -> None:
    # Arrange
    bracket = Bracket("TEST", 1, stop_loss=95.0, take_profit=105.0, entry_order_id="o")
    # Act
    trigger = bracket_trigger(bracket, bar(0, 100, 106, 94, 100))
    # Assert
    assert trigger is not None
    assert trigger.reason is ExitReason.STOP_LOSS
    assert trigger.price == 95.0


def test_gap_through_the_stop_fills_at_the_open() -> None:
    bracket = Bracket("TEST", -1, stop_loss=105.0, take_profit=None, entry_order_id="o")
    trigger = bracket_trigger(bracket, bar(0, 108, 109, 107, 108))
    assert trigger is not None
    assert trigger.price == 108.0


def test_bracket_exits_the_position_inside_a_later_bar() -> None:
    # Arrange
    bars = [bar(0, 100, 100, 100, 100), bar(1, 100, 101, 99.5, 100), bar(2, 100, 103, 99, 102)]
    intent = buy(1, stop_loss=98.0, take_profit=102.5, target=SignalDirection.LONG)
    # Act
    result = EventDrivenBacktester(ScriptedStrategy({0: intent}), BacktestConfig(cash=1_000)).run(
        bars
    )
    # Assert
    (trade,) = result.trades
    assert (trade.exit_reason, trade.exit_price, trade.exit_bar) == (
        ExitReason.TAKE_PROFIT,
        102.5,
        2,
    )
    assert result.final_positions == {}


def test_all_in_sizer_buys_whole_units_net_of_commission() -> None:
    context = SizingContext(
        "TEST", 100.0, 10_000.0, 10_000.0, 1.0, CostModel(commission_rate=0.01), TradeRecord()
    )
    assert AllInWholeUnits().units(context) == 99.0  # 10_000 // 101


def test_fixed_fraction_and_kelly_size_from_equity() -> None:
    record = TradeRecord(wins=30, losses=20, gross_profit=60.0, gross_loss=20.0)
    context = SizingContext("TEST", 50.0, 10_000.0, 10_000.0, 1.0, CostModel(), record)
    assert FixedFraction(0.5).units(context) == pytest.approx(100.0)
    # full Kelly: 0.6 - 0.4 / 2 = 0.4; half = 0.2, under the 0.25 cap
    assert FractionalKelly(minimum_trades=10).units(context) == pytest.approx(0.2 * 10_000 / 50)


def test_bars_out_of_time_order_are_refused() -> None:
    bars = flat_bars([1, 2])[::-1]
    with pytest.raises(ValueError, match="time order"):
        EventDrivenBacktester(ScriptedStrategy({}), BacktestConfig()).run(bars)


def test_two_symbols_share_one_account() -> None:
    # Arrange
    first = flat_bars([100, 110, 120], "AAA")
    second = flat_bars([50, 40, 30], "BBB")
    bars = sorted(first + second, key=lambda item: (item.opened_at, item.symbol))
    sell_b = OrderIntent("BBB", Side.SELL, 2.0, 50.0, 1.0, "test")
    strategy = ScriptedStrategy(
        {0: OrderIntent("AAA", Side.BUY, 1.0, 100.0, 1.0, "test"), 1: sell_b}
    )
    # Act
    result = EventDrivenBacktester(strategy, BacktestConfig(cash=1_000)).run(bars)
    # Assert: long AAA from 110 to 120, short BBB from 40 to 30.
    assert result.final_equity == pytest.approx(1_000 + 10 + 2 * 10)
    assert len(result.equity) == 3


def test_a_bar_feed_replays_exactly_like_its_bars() -> None:
    # Arrange: a random walk long enough for many crosses, traded all-in
    generator = random.Random(11)
    prices = [100.0]
    for _ in range(3_000):
        prices.append(round(prices[-1] * (1 + generator.gauss(0, 0.01)), 2))
    bars = flat_bars(prices)
    config = BacktestConfig(
        cash=10_000, costs=CostModel(commission_rate=0.001), sizer=AllInWholeUnits()
    )

    def run(data: Sequence[BarClosed]) -> BacktestResult:
        strategy = SmaCrossStrategy(SmaCrossParameters(fast=5, slow=20, quantity=1))
        return EventDrivenBacktester(strategy, config).run(data)

    # Act
    plain = run(bars)
    feed = BarFeed(bars)
    first, second = run(feed), run(feed)
    # Assert: the feed's tape is the bars' tape, reused run after run
    assert plain.trades
    for result in (first, second):
        assert result.trades == plain.trades
        assert result.fills == plain.fills
        assert result.equity.equals(plain.equity)


@dataclass
class WatchingAllIn:
    """AllInWholeUnits that asks to see every bar: forces the bar-by-bar replay."""

    observes_bars: bool = True
    seen: int = 0

    def observe(self, current: BarClosed) -> None:
        self.seen += 1

    def units(self, context: SizingContext) -> float:
        return AllInWholeUnits().units(context)


def test_replaying_only_signal_bars_equals_the_bar_by_bar_replay() -> None:
    # Arrange: the same crosses, once on the signal-only path and once bar by bar
    generator = random.Random(5)
    prices = [50.0]
    for _ in range(2_000):
        prices.append(round(prices[-1] * (1 + generator.gauss(0, 0.01)), 2))
    bars = BarFeed(flat_bars(prices))
    costs = CostModel(commission_rate=0.001)
    watching = WatchingAllIn()

    def run(sizer: AllInWholeUnits | WatchingAllIn) -> BacktestResult:
        strategy = SmaCrossStrategy(SmaCrossParameters(fast=3, slow=12, quantity=1))
        config = BacktestConfig(cash=10_000, costs=costs, sizer=sizer)  # type: ignore[arg-type]
        return EventDrivenBacktester(strategy, config).run(bars)

    # Act
    signals_only = run(AllInWholeUnits())
    bar_by_bar = run(watching)
    # Assert
    assert watching.seen == len(bars)
    assert len(signals_only.trades) > 20
    assert signals_only.trades == bar_by_bar.trades
    assert signals_only.fills == bar_by_bar.fills
    assert signals_only.equity.equals(bar_by_bar.equity)


def test_tape_marks_each_symbol_at_its_latest_close() -> None:
    # Arrange: BBB trades every other hour only
    first = flat_bars([100, 110, 120, 130], "AAA")
    second = [item for item in flat_bars([50, 40, 30, 20], "BBB") if item.opened_at.hour % 2]
    bars = sorted(first + second, key=lambda item: (item.opened_at, item.symbol))
    # Act
    tape = BarTape.of(bars)
    # Assert: the same as a forward fill of each symbol's closes
    expected = pd.DataFrame(
        [{item.symbol: item.close} for item in bars], columns=list(tape.symbols)
    ).ffill()
    np.testing.assert_array_equal(tape.closes, expected.to_numpy())
    assert tape.marks_before(0) == {}
    assert tape.marks_before(len(bars)) == {"AAA": 130.0, "BBB": 20.0}


def _fsum_sign(window: list[float], fast: int, slow: int) -> float:
    difference = math.fsum(window[-fast:]) / fast - math.fsum(window) / slow
    return float((difference > 0) - (difference < 0))


@given(
    st.lists(st.floats(1e-4, 1e6, allow_nan=False), min_size=1, max_size=80),
    st.integers(1, 8),
    st.integers(1, 20),
)
def test_crossing_windows_give_the_sign_of_the_correctly_rounded_averages(
    values: list[float], fast: int, extra: int
) -> None:
    slow = fast + extra
    windows = CrossingWindows(fast, slow)
    for position, value in enumerate(values):
        sign = windows.push(value)
        window = values[max(0, position - slow + 1) : position + 1]
        if len(window) == slow:
            assert sign == _fsum_sign(window, fast, slow)
        else:
            assert math.isnan(sign)


@given(
    st.lists(st.sampled_from([1.0, 1.0 + 2.0**-52, 1.0 - 2.0**-53, 3.0, 0.1]), max_size=300),
    st.integers(1, 6),
    st.integers(1, 12),
    st.sampled_from([1.0, 2.0**-40, 2.0**40, 1.1]),
)
def test_crossing_windows_are_exact_at_ties_and_one_ulp_apart(
    values: list[float], fast: int, extra: int, scale: float
) -> None:
    # Near-ties (equal averages, or averages one rounding apart) are where a running sum
    # could flip a sign; every sign must still be the exact one, also after many updates.
    slow = fast + extra
    scaled = [value * scale for value in values]
    windows = CrossingWindows(fast, slow)
    for position, value in enumerate(scaled):
        sign = windows.push(value)
        if position + 1 >= slow:
            assert sign == _fsum_sign(scaled[position + 1 - slow : position + 1], fast, slow)


def test_crossing_windows_stay_exact_over_a_long_random_walk() -> None:
    # Many fast-path updates and periodic recomputations on realistic FX prices.
    generator = random.Random(7)
    values = [1.1]
    for _ in range(20_000):
        values.append(round(values[-1] * (1 + generator.gauss(0, 0.001)), 5))
    fast, slow = 5, 20
    windows = CrossingWindows(fast, slow)
    for position, value in enumerate(values):
        sign = windows.push(value)
        if position + 1 >= slow:
            assert sign == _fsum_sign(values[position + 1 - slow : position + 1], fast, slow)


def _random_walk(count: int, seed: int = 7) -> list[BarClosed]:
    generator = random.Random(seed)
    price, bars = 100.0, []
    for index in range(count):
        step = price * generator.gauss(0.0, 0.02)
        close = max(price + step, 1.0)
        bars.append(bar(index, price, max(price, close) * 1.01, min(price, close) * 0.99, close))
        price = close
    return bars


def test_under_live_limits_risk_sees_the_bars_and_its_var_check_binds() -> None:
    # Arrange: a volatile market and a VaR limit no position of 50 units can meet
    bars = _random_walk(400)
    tight = BacktestConfig().limits.model_copy(update={"max_var_pct": 0.01, "max_cvar_pct": 0.01})
    strategy_script = {350: buy(50)}
    # Act
    fed = EventDrivenBacktester(
        ScriptedStrategy(dict(strategy_script)), BacktestConfig(cash=100_000, limits=tight)
    ).run(bars)
    blind = EventDrivenBacktester(
        ScriptedStrategy(dict(strategy_script)),
        BacktestConfig(cash=100_000, limits=tight, risk_sees_bars=False),
    ).run(bars)
    # Assert: with the bars, risk measures VaR and refuses; without them it cannot measure
    assert BacktestConfig(limits=tight).feeds_risk_market_data
    assert not BacktestConfig().feeds_risk_market_data
    assert [(item.stage, item.rule) for item in fed.rejections] == [("risk", "value_at_risk")]
    assert fed.fills == []
    assert len(blind.fills) == 1
