"""Repositories on SQLite: idempotency, single use, append-only audit, upserts, lock-out."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from tai_events import (
    BarClosed,
    FillExecuted,
    HaltTrading,
    MessageHeaders,
    OrderApproved,
    OrderRequested,
    OrderState,
    Side,
    Timeframe,
    TradingState,
    make_headers,
)
from tai_events.topics import CONTROL_EXCHANGE, EVENTS_EXCHANGE
from tai_store import RecordNotFoundError, Store, Trade, UserRole

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


def _request(order_id: str = "order-1", symbol: str = "EURUSD") -> OrderRequested:
    return OrderRequested(
        order_id=order_id,
        strategy="trend",
        symbol=symbol,
        side=Side.BUY,
        quantity=2000.0,
        reference_price=1.1,
        signal_time=T0,
        requested_at=T0,
        reason="breakout",
    )


async def test_inbox_claim_of_a_seen_message_returns_false(store: Store) -> None:
    async with store.transaction() as unit:
        first = await unit.inbox.claim("risk", "message-1", T0)
        second = await unit.inbox.claim("risk", "message-1", T0)
        other_consumer = await unit.inbox.claim("execution", "message-1", T0)

    assert (first, second, other_consumer) == (True, False, True)


async def test_outbox_add_stores_routing_body_and_wire_headers(
    store: Store, make_bar: Callable[..., BarClosed]
) -> None:
    bar = make_bar()
    headers = make_headers(bar, producer="ingestion", occurred_at=T0)

    async with store.transaction() as unit:
        await unit.outbox.add(bar, headers)
    async with store.transaction() as unit:
        (pending,) = await unit.outbox.pending()

    assert pending.exchange == EVENTS_EXCHANGE
    assert pending.routing_key == "market.bar.1h.EURUSD"
    assert pending.body == bar.to_json_bytes()
    assert pending.headers == headers.to_wire()
    assert pending.message_id == headers.message_id
    assert pending.created_at == T0
    assert pending.published_at is None


async def test_outbox_routes_commands_to_the_control_exchange(store: Store) -> None:
    command = HaltTrading(reason="drill", requested_by="admin", requested_at=T0)
    headers = make_headers(command, producer="gateway", occurred_at=T0)

    async with store.transaction() as unit:
        await unit.outbox.add(command, headers)
        (pending,) = await unit.outbox.pending()

    assert (pending.exchange, pending.routing_key) == (CONTROL_EXCHANGE, "control.halt")


async def test_outbox_refuses_headers_of_another_message_type(
    store: Store, make_bar: Callable[..., BarClosed]
) -> None:
    headers = MessageHeaders(
        message_id="m-1",
        type="FillExecuted",
        schema_version=1,
        occurred_at=T0,
        correlation_id="m-1",
        producer="ingestion",
    )

    with pytest.raises(ValueError, match="does not match"):
        async with store.transaction() as unit:
            await unit.outbox.add(make_bar(), headers)


async def test_order_state_changes_are_recorded_as_order_events(store: Store) -> None:
    async with store.transaction() as unit:
        await unit.orders.add_requested(_request(), T0)
        await unit.orders.set_state(
            "order-1",
            OrderState.SUBMITTED,
            T0 + timedelta(seconds=1),
            "sent",
            approved_quantity=1000.0,
        )
        filled = await unit.orders.set_state(
            "order-1",
            OrderState.FILLED,
            T0 + timedelta(seconds=2),
            "done",
            filled_quantity=1000.0,
            average_fill_price=1.1002,
        )
        events = await unit.orders.events("order-1")

    assert filled.state == "FILLED"
    assert (filled.approved_quantity, filled.filled_quantity) == (1000.0, 1000.0)
    assert filled.average_fill_price == 1.1002
    assert filled.updated_at == T0 + timedelta(seconds=2)
    assert [(event.previous_state, event.state) for event in events] == [
        (None, "NEW"),
        ("NEW", "SUBMITTED"),
        ("SUBMITTED", "FILLED"),
    ]


async def test_set_state_of_an_unknown_order_raises(store: Store) -> None:
    with pytest.raises(RecordNotFoundError, match="missing"):
        async with store.transaction() as unit:
            await unit.orders.set_state("missing", OrderState.CANCELLED, T0, "operator")


async def test_list_by_state_filters_by_state_and_symbol(store: Store) -> None:
    async with store.transaction() as unit:
        await unit.orders.add_requested(_request("a"), T0)
        await unit.orders.add_requested(_request("b", symbol="GBPUSD"), T0 + timedelta(seconds=1))
        await unit.orders.add_requested(_request("c"), T0 + timedelta(seconds=2))
        await unit.orders.set_state("c", OrderState.FILLED, T0, "done")
        open_orders = await unit.orders.list_by_state([OrderState.NEW, OrderState.SUBMITTED])
        open_eurusd = await unit.orders.list_by_state(["NEW"], symbol="EURUSD")

    assert [order.order_id for order in open_orders] == ["a", "b"]
    assert [order.order_id for order in open_eurusd] == ["a"]


async def test_approval_can_be_consumed_only_once(
    store: Store, make_approval: Callable[..., OrderApproved]
) -> None:
    approval = make_approval()
    async with store.transaction() as unit:
        await unit.approvals.add(approval)

    async with store.transaction() as unit:
        first = await unit.approvals.consume("approval-1", T0 + timedelta(seconds=1))
    async with store.transaction() as unit:
        replay = await unit.approvals.consume("approval-1", T0 + timedelta(seconds=2))
        stored = await unit.approvals.get("approval-1")

    assert (first, replay) == (True, False)
    assert stored is not None
    assert stored.consumed_at == T0 + timedelta(seconds=1)
    assert stored.to_event() == approval


async def test_consuming_an_unknown_approval_fails(store: Store) -> None:
    async with store.transaction() as unit:
        assert await unit.approvals.consume("never-issued", T0) is False


async def test_second_approval_for_the_same_order_is_refused(
    store: Store, make_approval: Callable[..., OrderApproved]
) -> None:
    async with store.transaction() as unit:
        await unit.approvals.add(make_approval("approval-1", "order-1"))

    with pytest.raises(IntegrityError):
        async with store.transaction() as unit:
            await unit.approvals.add(make_approval("approval-2", "order-1"))


async def test_duplicate_fill_is_ignored_and_fills_list_in_time_order(
    store: Store, make_fill: Callable[..., FillExecuted]
) -> None:
    async with store.transaction() as unit:
        late = await unit.fills.add(make_fill("fill-b", filled_at=T0 + timedelta(minutes=1)))
        early = await unit.fills.add(make_fill("fill-a"))
        duplicate = await unit.fills.add(make_fill("fill-a", price=9.9))
        other = await unit.fills.add(make_fill("fill-c", symbol="GBPUSD"))
        everything = await unit.fills.list()
        eurusd = await unit.fills.list(symbol="EURUSD")

    assert (late, early, duplicate, other) == (True, True, False, True)
    assert [fill.fill_id for fill in everything] == ["fill-a", "fill-c", "fill-b"]
    assert [fill.fill_id for fill in eurusd] == ["fill-a", "fill-b"]
    assert eurusd[0].price == 1.1
    assert eurusd[0].side == "BUY"


async def test_position_upsert_replaces_the_previous_values(store: Store) -> None:
    async with store.transaction() as unit:
        await unit.positions.upsert(
            "paper",
            "EURUSD",
            quantity=1000.0,
            average_price=1.1,
            realized_pnl=0.0,
            last_price=1.1,
            at=T0,
        )
        await unit.positions.upsert(
            "paper",
            "EURUSD",
            quantity=-500.0,
            average_price=1.2,
            realized_pnl=50.0,
            last_price=1.21,
            at=T0 + timedelta(hours=1),
        )
        await unit.positions.upsert(
            "paper",
            "AUDUSD",
            quantity=1.0,
            average_price=0.7,
            realized_pnl=0.0,
            last_price=0.7,
            at=T0,
        )
        position = await unit.positions.get("paper", "EURUSD")
        listed = await unit.positions.list("paper")
        missing = await unit.positions.get("paper", "USDJPY")

    assert position is not None
    assert (position.quantity, position.average_price, position.realized_pnl) == (-500.0, 1.2, 50.0)
    assert position.updated_at == T0 + timedelta(hours=1)
    assert [item.symbol for item in listed] == ["AUDUSD", "EURUSD"]
    assert missing is None


async def test_trade_is_stored_once_and_listed_by_exit_time(store: Store) -> None:
    trade = Trade(
        trade_id="trade-1",
        account="paper",
        strategy="trend",
        symbol="EURUSD",
        direction="LONG",
        quantity=1000.0,
        entry_time=T0,
        entry_price=1.1,
        exit_time=T0 + timedelta(hours=3),
        exit_price=1.12,
        pnl=20.0,
        commission=1.0,
    )

    async with store.transaction() as unit:
        first = await unit.trades.add(trade)
        again = await unit.trades.add(trade)
        listed = await unit.trades.list(account="paper")

    assert (first, again) == (True, False)
    assert listed == [trade]


async def test_snapshot_is_idempotent_on_account_and_time(store: Store) -> None:
    async with store.transaction() as unit:
        first = await unit.snapshots.add("paper", T0, cash=100.0, equity=110.0)
        again = await unit.snapshots.add("paper", T0, cash=999.0, equity=999.0)
        await unit.snapshots.add("paper", T0 + timedelta(hours=1), cash=100.0, equity=120.0)
        curve = await unit.snapshots.list("paper")
        window = await unit.snapshots.list("paper", start=T0 + timedelta(minutes=1))

    assert (first, again) == (True, False)
    assert [(point.cash, point.equity) for point in curve] == [(100.0, 110.0), (100.0, 120.0)]
    assert [point.taken_at for point in window] == [T0 + timedelta(hours=1)]


async def test_snapshot_put_replaces_the_one_at_the_same_moment(store: Store) -> None:
    # Arrange: the bar's snapshot, then a fill recorded after it at the same market time
    async with store.transaction() as unit:
        await unit.snapshots.add("paper", T0, cash=100.0, equity=110.0)
        await unit.snapshots.add("other", T0 + timedelta(hours=2), cash=1.0, equity=1.0)
    # Act
    async with store.transaction() as unit:
        await unit.snapshots.put("paper", T0, cash=80.0, equity=109.0)
        await unit.snapshots.put("paper", T0 + timedelta(hours=1), cash=80.0, equity=111.0)
        curve = await unit.snapshots.list("paper")
        latest = await unit.snapshots.latest("paper")
        missing = await unit.snapshots.latest("nobody")
    # Assert
    assert [(point.cash, point.equity) for point in curve] == [(80.0, 109.0), (80.0, 111.0)]
    assert latest is not None
    assert (latest.taken_at, latest.equity) == (T0 + timedelta(hours=1), 111.0)
    assert missing is None


async def test_current_trading_state_is_the_last_recorded(store: Store) -> None:
    async with store.transaction() as unit:
        assert await unit.trading_state.current() is None
        await unit.trading_state.record(TradingState.ACTIVE, None, "start", "risk", T0)
        await unit.trading_state.record(
            TradingState.HALTED, TradingState.ACTIVE, "kill switch", "admin", T0
        )
        current = await unit.trading_state.current()

    assert current is not None
    assert (current.state, current.previous_state, current.changed_by) == (
        "HALTED",
        "ACTIVE",
        "admin",
    )


async def test_audit_details_are_stored_as_json(store: Store) -> None:
    async with store.transaction() as unit:
        await unit.audit.record(
            "risk",
            "order.check",
            "order-1",
            "rejected",
            {"rule": "max_position", "at": T0, "side": Side.SELL, "limit": 3.5},
            T0,
        )
        await unit.audit.record("admin", "control.halt", "trading", "accepted", {}, T0)
        everything = await unit.audit.list()
        checks = await unit.audit.list(action="order.check")

    assert [entry.action for entry in everything] == ["control.halt", "order.check"]
    assert checks[0].details == {
        "rule": "max_position",
        "at": "2024-01-02T09:00:00Z",
        "side": "SELL",
        "limit": 3.5,
    }


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET outcome = 'approved'", "DELETE FROM audit_log"],
    ids=["update", "delete"],
)
async def test_audit_log_refuses_update_and_delete(store: Store, statement: str) -> None:
    async with store.transaction() as unit:
        await unit.audit.record("risk", "order.check", "order-1", "rejected", {}, T0)

    with pytest.raises(DBAPIError, match="append-only"):
        async with store.transaction() as unit:
            await unit.session.execute(text(statement))

    async with store.transaction() as unit:
        (entry,) = await unit.audit.list()
    assert entry.outcome == "rejected"


async def test_ohlcv_upsert_overwrites_and_range_is_ordered(
    store: Store, make_bar: Callable[..., BarClosed]
) -> None:
    hours = [T0 + timedelta(hours=offset) for offset in range(5)]
    async with store.transaction() as unit:
        written = await unit.ohlcv.upsert_many(make_bar(moment) for moment in reversed(hours))
        corrected = await unit.ohlcv.upsert_many([make_bar(hours[2], close=1.15)])
        everything = await unit.ohlcv.range("EURUSD", Timeframe.H1)
        window = await unit.ohlcv.range("EURUSD", "1h", start=hours[1], end=hours[3])
        latest = await unit.ohlcv.latest("EURUSD", Timeframe.H1, limit=2)
        other_timeframe = await unit.ohlcv.range("EURUSD", Timeframe.D1)

    assert (written, corrected) == (5, 1)
    assert [bar.opened_at for bar in everything] == hours
    assert everything[2].close == 1.15
    assert [bar.opened_at for bar in window] == hours[1:3]
    assert [bar.opened_at for bar in latest] == hours[3:]
    assert other_timeframe == []
    assert everything[0].to_event() == make_bar(hours[0])


async def test_ohlcv_upsert_keeps_the_last_of_repeated_bars_in_one_call(
    store: Store, make_bar: Callable[..., BarClosed]
) -> None:
    async with store.transaction() as unit:
        written = await unit.ohlcv.upsert_many([make_bar(T0, close=1.0), make_bar(T0, close=1.05)])
        (stored,) = await unit.ohlcv.range("EURUSD", Timeframe.H1)

    assert written == 1
    assert stored.close == 1.05


async def test_user_is_locked_after_repeated_failures_and_unlocked_by_reset(store: Store) -> None:
    lock_for = timedelta(minutes=15)
    async with store.transaction() as unit:
        await unit.users.add("alice", "argon2-hash", UserRole.TRADER, T0)
        first = await unit.users.record_failure("alice", T0, lock_after=2, lock_for=lock_for)
        second = await unit.users.record_failure("alice", T0, lock_after=2, lock_for=lock_for)
    async with store.transaction() as unit:
        await unit.users.reset_failures("alice")
        reset = await unit.users.get("alice")
        unknown = await unit.users.record_failure("mallory", T0, lock_after=2, lock_for=lock_for)

    assert first is not None
    assert (first.failed_attempts, first.locked_until) == (1, None)
    assert second is not None
    assert second.locked_until == T0 + lock_for
    assert second.is_locked(T0 + timedelta(minutes=14))
    assert not second.is_locked(T0 + lock_for)
    assert reset is not None
    assert (reset.failed_attempts, reset.locked_until, reset.role) == (0, None, UserRole.TRADER)
    assert unknown is None


async def test_user_with_an_unknown_role_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="superuser"):
        async with store.transaction() as unit:
            await unit.users.add("bob", "hash", "superuser", T0)


async def test_role_is_also_checked_by_the_database(store: Store) -> None:
    with pytest.raises(IntegrityError):
        async with store.transaction() as unit:
            await unit.session.execute(
                text(
                    "INSERT INTO users (username, password_hash, role, created_at) "
                    "VALUES ('eve', 'hash', 'root', '2024-01-01 00:00:00')"
                )
            )


def test_wire_headers_are_json_serialisable(make_bar: Callable[..., BarClosed]) -> None:
    headers = make_headers(make_bar(), producer="ingestion", occurred_at=T0)

    assert json.loads(json.dumps(headers.to_wire())) == headers.to_wire()
