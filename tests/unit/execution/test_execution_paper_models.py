"""Paper broker cost models, limit/stop triggering, partial fills and OCO brackets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tai_events.market import BarClosed, Timeframe
from tai_events.orders import OrderType, Side
from tai_execution.paper import (
    PaperBracketArmed,
    PaperBroker,
    PaperBrokerConfig,
    PaperCancellation,
    PaperFill,
    PaperResult,
    WorkingOrder,
)
from tests.factories import T0

HOUR = timedelta(hours=1)


def bar(
    index: int, open_: float, high: float, low: float, close: float, volume: float = 0.0
) -> BarClosed:
    opened = T0 + index * HOUR
    return BarClosed(
        symbol="EURUSD",
        timeframe=Timeframe.H1,
        opened_at=opened,
        closed_at=opened + HOUR,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        source="test",
    )


def order(
    order_id: str = "ord-1",
    side: Side = Side.BUY,
    quantity: float = 1000.0,
    **changes: object,
) -> WorkingOrder:
    fields: dict[str, object] = {
        "order_id": order_id,
        "strategy": "test",
        "symbol": "EURUSD",
        "side": side,
        "quantity": quantity,
        "signal_time": T0 + HOUR,
        "price_floor": 0.5,
        "price_ceiling": 2.0,
    }
    fields.update(changes)
    return WorkingOrder(**fields)  # type: ignore[arg-type]


def fills(results: list[PaperResult]) -> list[PaperFill]:
    return [result for result in results if isinstance(result, PaperFill)]


def cancellations(results: list[PaperResult]) -> list[PaperCancellation]:
    return [result for result in results if isinstance(result, PaperCancellation)]


def test_spread_and_slippage_make_buys_dearer_and_sells_cheaper() -> None:
    broker = PaperBroker(PaperBrokerConfig(spread_bps=2.0, slippage_bps=1.0, commission_rate=0))
    broker.submit_all(order("buy", Side.BUY))
    broker.submit_all(order("sell", Side.SELL))
    results = fills(broker.on_bar(bar(1, 1.2, 1.21, 1.19, 1.2)))
    prices = {fill.order.order_id: fill.price for fill in results}
    assert prices["buy"] == pytest.approx(1.2 * (1 + 2.0e-4))  # half spread 1 bp + 1 bp slip
    assert prices["sell"] == pytest.approx(1.2 * (1 - 2.0e-4))


def test_commission_adds_per_trade_per_unit_and_notional_parts() -> None:
    config = PaperBrokerConfig(
        commission_per_trade=2.5, commission_per_unit=0.001, commission_rate=0.0001
    )
    assert config.commission(1000, 1.2) == pytest.approx(2.5 + 1.0 + 1000 * 1.2 * 0.0001)
    broker = PaperBroker(config)
    broker.submit_all(order())
    [fill] = fills(broker.on_bar(bar(1, 1.2, 1.21, 1.19, 1.2)))
    assert fill.commission == pytest.approx(config.commission(1000, 1.2))


def test_buy_limit_waits_until_the_low_reaches_it_and_fills_at_the_limit() -> None:
    broker = PaperBroker(PaperBrokerConfig(commission_rate=0))
    broker.submit_all(order(order_type=OrderType.LIMIT, limit_price=1.15))
    assert broker.on_bar(bar(1, 1.20, 1.21, 1.16, 1.18)) == []
    [fill] = fills(broker.on_bar(bar(2, 1.18, 1.19, 1.14, 1.17)))
    assert fill.price == 1.15
    assert broker.working_orders() == []


def test_buy_limit_gapping_below_fills_at_the_better_open() -> None:
    broker = PaperBroker(PaperBrokerConfig(commission_rate=0))
    broker.submit_all(order(order_type=OrderType.LIMIT, limit_price=1.15))
    [fill] = fills(broker.on_bar(bar(1, 1.10, 1.12, 1.09, 1.11)))
    assert fill.price == 1.10


def test_sell_stop_triggers_when_the_low_crosses_and_slips_beyond_the_stop() -> None:
    broker = PaperBroker(PaperBrokerConfig(commission_rate=0, slippage_bps=10))
    broker.submit_all(order(side=Side.SELL, order_type=OrderType.STOP, stop_price=1.15))
    assert broker.on_bar(bar(1, 1.20, 1.21, 1.16, 1.18)) == []
    [fill] = fills(broker.on_bar(bar(2, 1.17, 1.18, 1.14, 1.15)))
    assert fill.price == pytest.approx(1.15 * (1 - 0.001))


def test_order_larger_than_the_volume_share_fills_over_several_bars() -> None:
    # Arrange: at most 10% of each bar's volume
    broker = PaperBroker(PaperBrokerConfig(commission_rate=0, max_volume_share=0.1))
    broker.submit_all(order(quantity=1000.0))
    # Act
    first = fills(broker.on_bar(bar(1, 1.2, 1.21, 1.19, 1.2, volume=4000)))
    second = fills(broker.on_bar(bar(2, 1.3, 1.31, 1.29, 1.3, volume=4000)))
    third = fills(broker.on_bar(bar(3, 1.4, 1.41, 1.39, 1.4, volume=40000)))
    # Assert
    assert [fill.filled_quantity for fill in first + second + third] == [400.0, 400.0, 200.0]
    assert len({fill.fill_id for fill in first + second + third}) == 3
    assert broker.working_orders() == []
    assert broker.positions() == {"EURUSD": pytest.approx(1000.0)}


def test_bars_without_volume_are_not_capped() -> None:
    broker = PaperBroker(PaperBrokerConfig(max_volume_share=0.1))
    broker.submit_all(order(quantity=1000.0))
    [fill] = fills(broker.on_bar(bar(1, 1.2, 1.21, 1.19, 1.2, volume=0)))
    assert fill.filled_quantity == 1000.0


def _bracketed(broker: PaperBroker, side: Side = Side.BUY) -> list[PaperResult]:
    stop, target = (1.15, 1.25) if side is Side.BUY else (1.25, 1.15)
    broker.submit_all(order(side=side, stop_loss=stop, take_profit=target))
    return broker.on_bar(bar(1, 1.20, 1.21, 1.19, 1.20))


def test_entry_fill_arms_both_legs_of_its_bracket() -> None:
    broker = PaperBroker(PaperBrokerConfig(commission_rate=0))
    results = _bracketed(broker)
    [armed] = [result for result in results if isinstance(result, PaperBracketArmed)]
    stop, target = armed.legs
    assert (stop.order_type, stop.stop_price, stop.side) == (OrderType.STOP, 1.15, Side.SELL)
    assert (target.order_type, target.limit_price) == (OrderType.LIMIT, 1.25)
    assert stop.parent_order_id == target.parent_order_id == "ord-1"


def test_take_profit_fills_and_cancels_the_stop_loss() -> None:
    broker = PaperBroker(PaperBrokerConfig(commission_rate=0))
    _bracketed(broker)
    results = broker.on_bar(bar(2, 1.22, 1.26, 1.21, 1.24))
    [exit_fill] = fills(results)
    [cancelled] = cancellations(results)
    assert exit_fill.price == 1.25
    assert exit_fill.order.side is Side.SELL
    assert cancelled.order.order_type is OrderType.STOP
    assert "one-cancels-other" in cancelled.reason
    assert broker.positions() == {}
    assert broker.armed_brackets() == []


def test_stop_loss_wins_when_one_bar_reaches_both_legs() -> None:
    broker = PaperBroker(PaperBrokerConfig(commission_rate=0))
    _bracketed(broker)
    results = broker.on_bar(bar(2, 1.20, 1.30, 1.10, 1.20))
    [exit_fill] = fills(results)
    assert exit_fill.order.order_type is OrderType.STOP
    assert exit_fill.price == 1.15
    assert [item.order.order_type for item in cancellations(results)] == [OrderType.LIMIT]


def test_stop_loss_of_a_short_fills_at_the_gap_open_when_the_bar_gaps_through_it() -> None:
    broker = PaperBroker(PaperBrokerConfig(commission_rate=0))
    _bracketed(broker, Side.SELL)
    [exit_fill] = fills(broker.on_bar(bar(2, 1.28, 1.29, 1.27, 1.28)))
    assert exit_fill.order.side is Side.BUY
    assert exit_fill.price == 1.28


def test_bracket_is_managed_across_bars_until_a_leg_triggers() -> None:
    broker = PaperBroker(PaperBrokerConfig(commission_rate=0))
    _bracketed(broker)
    for index in range(2, 6):
        assert broker.on_bar(bar(index, 1.20, 1.22, 1.18, 1.20)) == []
    assert len(broker.armed_brackets()) == 1
    [exit_fill] = fills(broker.on_bar(bar(6, 1.20, 1.21, 1.14, 1.16)))
    assert exit_fill.price == 1.15


def test_opposite_order_closing_the_position_cancels_the_bracket() -> None:
    broker = PaperBroker(PaperBrokerConfig(commission_rate=0))
    _bracketed(broker)
    broker.submit_all(order("ord-close", Side.SELL, signal_time=T0 + 2 * HOUR))
    results = broker.on_bar(bar(2, 1.20, 1.21, 1.19, 1.20))
    assert [fill.order.order_id for fill in fills(results)] == ["ord-close"]
    assert len(cancellations(results)) == 2
    assert broker.armed_brackets() == []
    assert broker.on_bar(bar(3, 1.20, 1.30, 1.10, 1.20)) == []


def test_bracket_on_a_partial_entry_protects_the_filled_part_and_cancels_the_rest() -> None:
    # Arrange: 10% of 4000 volume = 400 of 1000 fill on the first bar
    broker = PaperBroker(PaperBrokerConfig(commission_rate=0, max_volume_share=0.1))
    broker.submit_all(order(stop_loss=1.15, take_profit=1.25))
    broker.on_bar(bar(1, 1.20, 1.21, 1.19, 1.20, volume=4000))
    # Act: the next bar opens below the stop (before any more of the entry could fill)
    results = broker.on_bar(bar(2, 1.20, 1.21, 1.10, 1.12, volume=4000))
    # Assert: the entry's second part filled at the open, then the stop closed all 800
    entry_fills = [fill for fill in fills(results) if fill.order.order_id == "ord-1"]
    [exit_fill] = [fill for fill in fills(results) if fill.order.is_bracket_leg]
    assert [fill.filled_quantity for fill in entry_fills] == [400.0]
    assert exit_fill.filled_quantity == 800.0
    reasons = [item.reason for item in cancellations(results)]
    assert any("one-cancels-other" in reason for reason in reasons)
    assert any("position closed by stop-loss" in reason for reason in reasons)
    assert broker.working_orders() == []
    assert broker.positions() == {}
