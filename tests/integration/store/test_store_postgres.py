"""The store on a real PostgreSQL: schema, concurrency, append-only audit, UTC, relay."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from tai_events import BarClosed, OrderApproved, Timeframe, make_headers
from tai_store import Base, OutboxRelay, Store, is_database_unavailable, queries
from tai_store.database import migration_heads

pytestmark = pytest.mark.integration

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


def _schema_differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_the_models(pg_store: Store) -> None:
    await pg_store.migrate()  # second run on a migrated database: a no-op

    async with pg_store.engine.connect() as connection:
        differences = await connection.run_sync(_schema_differences)
        version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()

    assert differences == []
    assert {revision for (revision,) in version} == migration_heads()


async def test_concurrent_migrations_both_succeed(
    new_postgres_database: Callable[[], str],
) -> None:
    url = new_postgres_database()
    first, second = Store(url), Store(url)
    try:
        await asyncio.gather(first.migrate(), second.migrate())
        async with first.transaction() as unit:
            assert await unit.trading_state.current() is None
    finally:
        await first.close()
        await second.close()


async def test_timestamps_are_aware_utc_even_when_the_session_zone_is_not(
    pg_store: Store, unique: Callable[[str], str]
) -> None:
    account = unique("account")
    written = datetime(2024, 7, 1, 12, 0, 0, 654321, tzinfo=timezone(timedelta(hours=-4)))

    async with pg_store.transaction() as unit:
        await unit.session.execute(text("SET LOCAL TIME ZONE 'Asia/Tokyo'"))
        await unit.snapshots.add(account, written, cash=1.0, equity=1.0)
        (snapshot,) = await unit.snapshots.list(account)

    assert snapshot.taken_at == written
    assert snapshot.taken_at.tzinfo is UTC
    assert snapshot.taken_at.hour == 16


async def test_snapshot_put_replaces_the_one_at_the_same_moment(
    pg_store: Store, unique: Callable[[str], str]
) -> None:
    account = unique("account")
    async with pg_store.transaction() as unit:
        await unit.snapshots.add(account, T0, cash=100.0, equity=110.0)
    async with pg_store.transaction() as unit:
        await unit.snapshots.put(account, T0, cash=80.0, equity=109.0)
        curve = await unit.snapshots.list(account)
        latest = await unit.snapshots.latest(account)
    assert [(point.cash, point.equity) for point in curve] == [(80.0, 109.0)]
    assert latest is not None
    assert latest.cash == 80.0


async def test_two_concurrent_claims_of_one_message_let_exactly_one_through(
    pg_store: Store, unique: Callable[[str], str]
) -> None:
    message_id = unique("message")
    first_claimed = asyncio.Event()
    release_first = asyncio.Event()

    async def first_claim() -> bool:
        async with pg_store.transaction() as unit:
            claimed = await unit.inbox.claim("risk", message_id, T0)
            first_claimed.set()
            await release_first.wait()
            return claimed

    async def second_claim() -> bool:
        await first_claimed.wait()
        async with pg_store.transaction() as unit:
            return await unit.inbox.claim("risk", message_id, T0)

    first_task = asyncio.create_task(first_claim())
    second_task = asyncio.create_task(second_claim())
    await _wait_until_a_session_waits_on_a_lock(pg_store)
    release_first.set()
    results = await asyncio.gather(first_task, second_task)

    assert sorted(results) == [False, True]


async def _wait_until_a_session_waits_on_a_lock(store: Store) -> None:
    """Poll pg_stat_activity until another session is blocked on a lock (proves the overlap)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    for _ in range(500):
        async with store.engine.connect() as connection:
            if (await connection.execute(query)).scalar_one() > 0:
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the second claim never waited on the first one's lock")


async def test_concurrent_consumers_of_one_approval_let_exactly_one_through(
    pg_store: Store, unique: Callable[[str], str], make_approval: Callable[..., OrderApproved]
) -> None:
    approval_id = unique("approval")
    async with pg_store.transaction() as unit:
        await unit.approvals.add(make_approval(approval_id, unique("order")))

    async def consume() -> bool:
        async with pg_store.transaction() as unit:
            return await unit.approvals.consume(approval_id, T0)

    results = await asyncio.gather(*(consume() for _ in range(5)))

    assert sorted(results) == [False, False, False, False, True]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET outcome = 'approved' WHERE subject = :subject",
        "DELETE FROM audit_log WHERE subject = :subject",
        "TRUNCATE audit_log",
    ],
    ids=["update", "delete", "truncate"],
)
async def test_audit_log_refuses_update_delete_and_truncate(
    pg_store: Store, unique: Callable[[str], str], statement: str
) -> None:
    subject = unique("order")
    async with pg_store.transaction() as unit:
        await unit.audit.record("risk", "order.check", subject, "rejected", {"rule": "x"}, T0)

    with pytest.raises(DBAPIError, match="append-only"):
        async with pg_store.transaction() as unit:
            await unit.session.execute(text(statement), {"subject": subject})

    async with pg_store.transaction() as unit:
        entries = [entry for entry in await unit.audit.list(1000) if entry.subject == subject]
    assert [entry.outcome for entry in entries] == ["rejected"]


async def test_ohlcv_upsert_is_idempotent(
    pg_store: Store, make_bar: Callable[..., BarClosed], unique: Callable[[str], str]
) -> None:
    symbol = unique("S").upper()[:32]
    batch = [make_bar(T0 + timedelta(hours=offset), symbol=symbol) for offset in range(50)]

    async with pg_store.transaction() as unit:
        first = await unit.ohlcv.upsert_many(batch)
        once = await unit.ohlcv.range(symbol, Timeframe.H1)
    async with pg_store.transaction() as unit:
        second = await unit.ohlcv.upsert_many([*batch, batch[0]])
        twice = await unit.ohlcv.range(symbol, Timeframe.H1)

    assert (first, second) == (50, 50)
    assert once == twice
    assert [bar.to_event() for bar in twice] == batch


async def _queue(store: Store, make_bar: Callable[..., BarClosed], count: int) -> list[str]:
    message_ids = []
    async with store.transaction() as unit:
        for offset in range(count):
            bar = make_bar(T0 + timedelta(hours=offset))
            headers = make_headers(bar, producer="ingestion", occurred_at=T0)
            await unit.outbox.add(bar, headers)
            message_ids.append(headers.message_id)
    return message_ids


class Publisher:
    def __init__(self, fail_at: int | None = None) -> None:
        self.message_ids: list[object] = []
        self.fail_at = fail_at
        self.calls = 0

    async def __call__(
        self, exchange: str, routing_key: str, body: bytes, headers: dict[str, object]
    ) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise ConnectionError("broker went away")
        self.message_ids.append(headers["message_id"])


async def test_relay_publishes_in_order_and_resumes_after_a_failure(
    fresh_pg_store: Store, make_bar: Callable[..., BarClosed]
) -> None:
    message_ids = await _queue(fresh_pg_store, make_bar, 6)
    publisher = Publisher(fail_at=4)
    relay = OutboxRelay(fresh_pg_store, publisher)

    with pytest.raises(ConnectionError):
        await relay.publish_pending()
    async with fresh_pg_store.transaction() as unit:
        pending = [message.message_id for message in await unit.outbox.pending()]
    resumed = await relay.publish_pending()

    assert pending == message_ids[3:]
    assert resumed == 3
    assert publisher.message_ids == message_ids


async def test_two_relays_at_once_publish_each_message_once_in_order(
    fresh_pg_store: Store, make_bar: Callable[..., BarClosed]
) -> None:
    message_ids = await _queue(fresh_pg_store, make_bar, 10)
    published: list[object] = []
    first_started = asyncio.Event()
    release_first = asyncio.Event()

    async def slow_publish(
        exchange: str, routing_key: str, body: bytes, headers: dict[str, object]
    ) -> None:
        first_started.set()
        await release_first.wait()
        published.append(headers["message_id"])

    async def fast_publish(
        exchange: str, routing_key: str, body: bytes, headers: dict[str, object]
    ) -> None:
        published.append(headers["message_id"])

    other_store = Store(fresh_pg_store.url)
    try:
        first = asyncio.create_task(OutboxRelay(fresh_pg_store, slow_publish).publish_pending())
        await first_started.wait()
        second_count = await OutboxRelay(other_store, fast_publish).publish_pending()
        release_first.set()
        first_count = await first
        third_count = await OutboxRelay(other_store, fast_publish).publish_pending()
    finally:
        await other_store.close()

    assert (first_count, second_count, third_count) == (10, 0, 0)
    assert published == message_ids


async def test_report_queries_run_on_the_read_only_sync_engine(
    pg_store: Store, unique: Callable[[str], str]
) -> None:
    account = unique("account")
    async with pg_store.transaction() as unit:
        await unit.snapshots.add(account, T0, cash=100.0, equity=100.0)
        await unit.snapshots.add(account, T0 + timedelta(hours=1), cash=100.0, equity=103.0)
    engine = pg_store.sync_engine()

    curve = queries.equity_curve(engine, account)
    with engine.connect() as connection, pytest.raises(DBAPIError, match="read-only"):
        connection.execute(text("DELETE FROM account_snapshots"))

    assert list(curve["equity"]) == [100.0, 103.0]
    assert curve.index[0].tzinfo is not None


async def test_an_unreachable_postgresql_is_an_outage() -> None:
    # Arrange: nothing listens on this port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = Store(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres")
    # Act
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the driver's error, whatever its type
        async with store.transaction() as unit:
            await unit.orders.get("ord-1")
    await store.close()
    # Assert
    assert is_database_unavailable(raised.value)


async def test_bars_are_stored_as_market_data_and_the_ledger_stays_durable(
    pg_store: Store, make_bar: Callable[..., BarClosed]
) -> None:
    # Arrange: the same bar twice (the last wins) and a second one
    first = make_bar(T0, close=1.1)
    again = make_bar(T0, close=1.2)
    second = make_bar(T0 + timedelta(hours=1), close=1.3)
    # Act
    written = await pg_store.store_bars([first, again, second])
    # Assert
    async with pg_store.transaction() as unit:
        stored = await unit.ohlcv.latest(first.symbol, first.timeframe, 5)
        ledger = (await unit.session.execute(text("SHOW synchronous_commit"))).scalar_one()
    assert written == 2
    assert [bar.close for bar in stored] == [1.2, 1.3]
    assert ledger == "on"
