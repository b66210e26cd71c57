"""The event contract refuses what it must and routes what it carries."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tai_events import (
    AlertRaised,
    BarClosed,
    HaltTrading,
    OrderRequested,
    OrderState,
    OrderStatusChanged,
    Severity,
    Side,
    Timeframe,
)
from tai_events.codec import MessageDecodeError, decode, make_headers
from tai_events.topics import CONTROL_EXCHANGE, EVENTS_EXCHANGE, exchange_for, routing_key_for
from tests.factories import T0, make_bar


def _order(**overrides: object) -> OrderRequested:
    fields: dict[str, object] = {
        "order_id": "ord-1",
        "strategy": "sma_cross",
        "symbol": "EURUSD",
        "side": Side.BUY,
        "quantity": 1000.0,
        "reference_price": 1.1,
        "signal_time": T0,
        "requested_at": T0,
    }
    fields.update(overrides)
    return OrderRequested.model_validate(fields)


def test_bar_routing_key_names_timeframe_and_symbol() -> None:
    assert routing_key_for(make_bar(0, 1.07)) == "market.bar.1h.EURUSD"


def test_order_state_change_is_routed_by_state() -> None:
    change = OrderStatusChanged(
        order_id="ord-1",
        symbol="EURUSD",
        state=OrderState.FILLED,
        previous_state=None,
        filled_quantity=1.0,
        remaining_quantity=0.0,
        changed_at=T0,
    )
    assert routing_key_for(change) == "order.filled"


def test_commands_go_to_the_control_exchange_and_events_to_the_events_exchange() -> None:
    halt = HaltTrading(requested_by="alice", requested_at=T0)
    assert exchange_for(halt) == CONTROL_EXCHANGE
    assert routing_key_for(halt) == "control.halt"
    assert exchange_for(make_bar(0, 1.0)) == EVENTS_EXCHANGE


def test_alert_is_routed_by_severity() -> None:
    alert = AlertRaised(
        severity=Severity.CRITICAL, source="risk", code="x", message="m", raised_at=T0
    )
    assert routing_key_for(alert) == "alert.critical"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_quantity_is_refused(value: float) -> None:
    with pytest.raises(ValidationError):
        _order(quantity=value)


def test_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        _order(signal_time=datetime(2017, 1, 1))


def test_aware_timestamp_is_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    order = _order(signal_time=datetime(2017, 1, 1, 12, tzinfo=plus_two))
    assert order.signal_time.utcoffset() == timedelta(0)
    assert order.signal_time.hour == 10


@pytest.mark.parametrize("symbol", ["eurusd", "EUR.USD", "", "A" * 33, "EUR USD"])
def test_invalid_symbols_are_refused(symbol: str) -> None:
    with pytest.raises(ValidationError):
        _order(symbol=symbol)


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        _order(leverage=100)


def test_messages_are_frozen() -> None:
    order = _order()
    with pytest.raises(ValidationError):
        order.quantity = 5.0  # type: ignore[misc]


def test_bar_with_low_above_open_is_refused() -> None:
    with pytest.raises(ValidationError, match="inconsistent OHLC"):
        BarClosed(
            symbol="EURUSD",
            timeframe=Timeframe.H1,
            opened_at=T0,
            closed_at=T0 + timedelta(hours=1),
            open=1.0,
            high=1.2,
            low=1.1,
            close=1.15,
            volume=1.0,
            source="t",
        )


def test_bar_whose_span_differs_from_its_timeframe_is_refused() -> None:
    with pytest.raises(ValidationError, match="timeframe"):
        BarClosed(
            symbol="EURUSD",
            timeframe=Timeframe.H1,
            opened_at=T0,
            closed_at=T0 + timedelta(minutes=5),
            open=1.0,
            high=1.0,
            low=1.0,
            close=1.0,
            volume=1.0,
            source="t",
        )


@given(
    close=st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False),
    index=st.integers(min_value=0, max_value=100_000),
)
def test_encode_then_decode_returns_an_equal_message(close: float, index: int) -> None:
    # Arrange
    bar = make_bar(index, close)
    headers = make_headers(bar, producer="ingestion", occurred_at=T0)
    # Act
    envelope = decode(headers.to_wire(), bar.to_json_bytes(), routing_key_for(bar))
    # Assert
    assert envelope.message == bar
    assert envelope.headers == headers


def test_child_headers_continue_the_correlation() -> None:
    bar = make_bar(0, 1.0)
    parent = make_headers(bar, producer="ingestion", occurred_at=T0)
    child = make_headers(_order(), producer="strategy", occurred_at=T0, cause=parent)
    assert child.correlation_id == parent.correlation_id
    assert child.causation_id == parent.message_id


@pytest.mark.parametrize(
    ("headers_patch", "body", "reason"),
    [
        ({"type": "NoSuchEvent"}, None, "unknown message type"),
        ({"schema_version": 99}, None, "unknown message type/version"),
        ({"message_id": None}, None, "invalid headers"),
        ({}, b"\xff\xfe not utf-8", "not valid UTF-8"),
        ({}, b'{"symbol": "EURUSD"}', "invalid BarClosed v1"),
        ({}, b"[not json", "invalid BarClosed v1"),
        ({}, b"x" * 300_000, "exceeds"),
    ],
)
def test_malformed_messages_raise_a_decode_error_with_a_reason(
    headers_patch: dict[str, object], body: bytes | None, reason: str
) -> None:
    # Arrange
    bar = make_bar(0, 1.0)
    wire: dict[str, object] = dict(make_headers(bar, producer="p", occurred_at=T0).to_wire())
    for key, value in headers_patch.items():
        if value is None:
            wire.pop(key)
        else:
            wire[key] = value
    # Act / Assert
    with pytest.raises(MessageDecodeError, match=reason):
        decode(wire, body if body is not None else bar.to_json_bytes(), "market.bar.1h.EURUSD")
