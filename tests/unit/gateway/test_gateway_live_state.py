"""LiveState and the bus handlers that feed it."""

from __future__ import annotations

from datetime import timedelta

from gateway_support import T0, make_fill

from tai_bus import InMemoryBus
from tai_events.alerts import AlertRaised, Severity
from tai_events.market import BarClosed, Timeframe
from tai_events.orders import OrderState, OrderStatusChanged, PositionUpdated
from tai_events.risk import RiskStateChanged, TradingState
from tai_gateway.app import GatewayApp
from tai_gateway.handlers import on_fill_executed, on_order_status_changed, on_risk_state_changed
from tai_gateway.live import LiveState


def risk_state(state: TradingState, minutes: int = 0) -> RiskStateChanged:
    return RiskStateChanged(
        state=state,
        previous_state=TradingState.ACTIVE,
        reason="test",
        equity=100_000.0,
        peak_equity=101_000.0,
        drawdown_pct=1.0,
        daily_pnl=-100.0,
        changed_at=T0 + timedelta(minutes=minutes),
    )


def order_update(state: OrderState, minutes: int) -> OrderStatusChanged:
    return OrderStatusChanged(
        order_id="order-1",
        symbol="EURUSD",
        state=state,
        previous_state=None,
        filled_quantity=0.0,
        remaining_quantity=1000.0,
        changed_at=T0 + timedelta(minutes=minutes),
    )


def test_fill_is_shown_newest_first_and_bumps_the_version() -> None:
    state = LiveState()
    on_fill_executed(make_fill(1), state)
    on_fill_executed(make_fill(2), state)
    snapshot = state.snapshot()
    assert snapshot.version == 2
    assert [fill.fill_id for fill in snapshot.fills] == ["fill-2", "fill-1"]


def test_redelivered_fill_is_not_duplicated() -> None:
    state = LiveState()
    on_fill_executed(make_fill(1), state)
    on_fill_executed(make_fill(1), state)
    assert len(state.snapshot().fills) == 1
    assert state.version == 1


def test_fill_capacity_keeps_only_the_newest() -> None:
    state = LiveState(fill_capacity=2)
    for number in range(1, 4):
        on_fill_executed(make_fill(number), state)
    assert [fill.fill_id for fill in state.snapshot().fills] == ["fill-3", "fill-2"]
    on_fill_executed(make_fill(1), state)  # evicted, so it is new again
    assert [fill.fill_id for fill in state.snapshot().fills] == ["fill-1", "fill-3"]


def test_older_order_update_does_not_overwrite_a_newer_one() -> None:
    state = LiveState()
    on_order_status_changed(order_update(OrderState.FILLED, minutes=5), state)
    on_order_status_changed(order_update(OrderState.SUBMITTED, minutes=1), state)
    assert [order.state for order in state.snapshot().orders] == [OrderState.FILLED]


def test_risk_state_tracks_the_newest_change() -> None:
    state = LiveState()
    on_risk_state_changed(risk_state(TradingState.HALTED, minutes=2), state)
    on_risk_state_changed(risk_state(TradingState.ACTIVE, minutes=1), state)
    risk = state.snapshot().risk
    assert risk is not None
    assert risk.state is TradingState.HALTED


async def test_gateway_stream_updates_live_state_from_the_bus(
    gateway: GatewayApp, bus: InMemoryBus
) -> None:
    # Arrange
    bar = BarClosed(
        symbol="EURUSD",
        timeframe=Timeframe.H1,
        opened_at=T0,
        closed_at=T0 + timedelta(hours=1),
        open=1.1,
        high=1.2,
        low=1.0,
        close=1.15,
        volume=10.0,
        source="test",
    )
    position = PositionUpdated(
        symbol="EURUSD",
        quantity=1000.0,
        average_price=1.1,
        realized_pnl=0.0,
        unrealized_pnl=5.0,
        mark_price=1.105,
        updated_at=T0,
    )
    alert = AlertRaised(
        severity=Severity.WARNING,
        source="risk",
        code="drawdown",
        message="drawdown above 5%",
        raised_at=T0,
    )
    # Act
    for message in (make_fill(1), bar, position, alert, risk_state(TradingState.HALTED)):
        await bus.publish(message)
    await bus.drain()
    # Assert
    snapshot = gateway.live.snapshot()
    assert snapshot.version == 5
    assert [fill.fill_id for fill in snapshot.fills] == ["fill-1"]
    assert snapshot.bars == (bar,)
    assert snapshot.positions == (position,)
    assert snapshot.alerts == (alert,)
    assert snapshot.risk is not None
    assert snapshot.risk.state is TradingState.HALTED
    assert gateway.ready()
