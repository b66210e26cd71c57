"""Strategies know what they really hold: positions from fills, exits sized to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tai_events.market import Timeframe
from tai_events.orders import OrderState, Side, SignalDirection
from tai_strategy.base import OrderIntent
from tai_strategy.positions import PositionBook, order_id_for

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
H1 = Timeframe.H1
ENTRY_AT = T0
EXIT_AT = T0 + timedelta(hours=30)
ENTRY_ID = order_id_for("scalping", "EURUSD", H1, ENTRY_AT, Side.BUY)


def _exit(strategy_entry_at: datetime = ENTRY_AT) -> OrderIntent:
    return OrderIntent(
        symbol="EURUSD",
        side=Side.SELL,
        quantity=None,
        reference_price=1.1,
        confidence=1.0,
        reason="scalping exit: long held 30 bars",
        target=SignalDirection.FLAT,
        reduce_only=True,
        entry_signal_time=strategy_entry_at,
    )


def _book_with_entry() -> PositionBook:
    book = PositionBook()
    book.sent(ENTRY_ID, "scalping", "EURUSD", Side.BUY, reduce_only=False)
    return book


def test_rejected_entry_leaves_the_strategy_flat_and_its_exit_is_dropped() -> None:
    # Arrange
    book = _book_with_entry()
    # Act
    book.on_order_ended(ENTRY_ID, OrderState.REJECTED)
    exit_order = book.exit_for("scalping", _exit(), H1, EXIT_AT)
    # Assert
    assert book.held("scalping", "EURUSD") == 0.0
    assert exit_order is None
    assert book.dropped_exits == 1


def test_expired_entry_leaves_the_strategy_flat() -> None:
    book = _book_with_entry()
    book.on_order_ended(ENTRY_ID, OrderState.EXPIRED, 0.0)
    assert book.exit_for("scalping", _exit(), H1, EXIT_AT) is None


def test_partial_fill_is_held_as_partial_and_the_exit_asks_exactly_that() -> None:
    # Arrange: 4,000 of the entry filled, then the rest expired
    book = _book_with_entry()
    book.on_fill("fill-1", ENTRY_ID, "scalping", "EURUSD", Side.BUY, 4_000.0)
    book.on_order_ended(ENTRY_ID, OrderState.EXPIRED, 4_000.0)
    # Act
    exit_order = book.exit_for("scalping", _exit(), H1, EXIT_AT)
    # Assert
    assert book.held("scalping", "EURUSD") == 4_000.0
    assert exit_order is not None
    assert exit_order.intent.quantity == 4_000.0
    assert exit_order.intent.reduce_only
    assert exit_order.intent.side is Side.SELL


def test_exit_waits_for_its_entry_and_keeps_its_own_signal_time() -> None:
    # Arrange: the exit is due before the entry's fill arrived (a backlog)
    book = _book_with_entry()
    # Act
    waiting = book.exit_for("scalping", _exit(), H1, EXIT_AT)
    book.on_fill("fill-1", ENTRY_ID, "scalping", "EURUSD", Side.BUY, 10_000.0)
    released = book.on_order_ended(ENTRY_ID, OrderState.FILLED, 10_000.0)
    # Assert
    assert waiting is None
    (exit_order,) = released
    assert exit_order.signal_time == EXIT_AT
    assert exit_order.intent.quantity == 10_000.0


def test_a_terminal_state_that_overtakes_its_fill_waits_for_the_fill() -> None:
    book = _book_with_entry()
    book.exit_for("scalping", _exit(), H1, EXIT_AT)
    assert book.on_order_ended(ENTRY_ID, OrderState.FILLED, 10_000.0) == []
    (exit_order,) = book.on_fill("fill-1", ENTRY_ID, "scalping", "EURUSD", Side.BUY, 10_000.0)
    assert exit_order.intent.quantity == 10_000.0


def test_a_bracket_that_closed_the_position_leaves_nothing_to_exit() -> None:
    book = _book_with_entry()
    book.on_fill("fill-1", ENTRY_ID, "scalping", "EURUSD", Side.BUY, 10_000.0)
    book.on_order_ended(ENTRY_ID, OrderState.FILLED, 10_000.0)
    book.on_fill("fill-2", "sl-x", "scalping", "EURUSD", Side.SELL, 10_000.0)
    assert book.exit_for("scalping", _exit(), H1, EXIT_AT) is None


def test_an_exit_never_closes_another_strategys_position() -> None:
    book = _book_with_entry()
    book.on_order_ended(ENTRY_ID, OrderState.REJECTED)
    book.on_fill("fill-9", "ord-other", "intraday", "EURUSD", Side.BUY, 50_000.0)
    assert book.exit_for("scalping", _exit(), H1, EXIT_AT) is None
    assert book.held("intraday", "EURUSD") == 50_000.0


def test_an_exit_closes_only_what_its_own_entry_left() -> None:
    # Arrange: an older lot of 3,000 is still held when this entry filled 10,000
    book = _book_with_entry()
    book.on_fill("fill-0", "ord-older", "scalping", "EURUSD", Side.BUY, 3_000.0)
    book.on_fill("fill-1", ENTRY_ID, "scalping", "EURUSD", Side.BUY, 10_000.0)
    book.on_order_ended(ENTRY_ID, OrderState.FILLED, 10_000.0)
    # Act
    exit_order = book.exit_for("scalping", _exit(), H1, EXIT_AT)
    # Assert
    assert exit_order is not None
    assert exit_order.intent.quantity == 10_000.0


def test_a_fill_is_applied_once() -> None:
    book = PositionBook()
    book.on_fill("fill-1", "ord-1", "swing", "EURUSD", Side.SELL, 2_000.0)
    book.on_fill("fill-1", "ord-1", "swing", "EURUSD", Side.SELL, 2_000.0)
    assert book.held("swing", "EURUSD") == -2_000.0


def test_an_entry_waits_behind_a_waiting_exit_so_risk_sees_them_in_order() -> None:
    # Arrange: the long's exit waits for its fill; a short entry comes meanwhile
    book = _book_with_entry()
    book.exit_for("scalping", _exit(), H1, EXIT_AT)
    short_entry = OrderIntent(
        symbol="EURUSD",
        side=Side.SELL,
        quantity=None,
        reference_price=1.1,
        confidence=0.7,
        reason="scalping short",
        risk_budget_pct=0.75,
    )
    # Act
    assert book.has_pending("scalping", "EURUSD")
    book.defer("scalping", short_entry, H1, EXIT_AT + timedelta(hours=1))
    book.on_fill("fill-1", ENTRY_ID, "scalping", "EURUSD", Side.BUY, 10_000.0)
    released = book.on_order_ended(ENTRY_ID, OrderState.FILLED, 10_000.0)
    # Assert: the exit goes first; the entry follows once the exit's outcome is known
    (exit_order,) = released
    assert exit_order.intent.reduce_only
    exit_id = order_id_for("scalping", "EURUSD", H1, EXIT_AT, Side.SELL)
    book.on_fill("fill-2", exit_id, "scalping", "EURUSD", Side.SELL, 10_000.0)
    (entry_order,) = book.on_order_ended(exit_id, OrderState.FILLED, 10_000.0)
    assert entry_order.intent is short_entry
    assert entry_order.signal_time == EXIT_AT + timedelta(hours=1)


def test_the_oldest_resolved_orders_are_forgotten_beyond_the_bound() -> None:
    book = PositionBook(max_orders=10)
    for index in range(12):
        order_id = f"ord-{index}"
        book.sent(order_id, "swing", "EURUSD", Side.BUY, reduce_only=False)
        book.on_order_ended(order_id, OrderState.REJECTED)
    assert len(book.orders) <= 10
    assert "ord-11" in book.orders
