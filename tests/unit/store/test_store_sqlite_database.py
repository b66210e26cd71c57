"""Store on SQLite: migrations, schema drift, transactions, pragmas, UTC timestamps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy.exc
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError

from tai_events import BarClosed, Timeframe
from tai_store import (
    Base,
    Store,
    UnsupportedDatabaseError,
    create_database_if_missing,
    is_database_unavailable,
)
from tai_store.database import migration_heads

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


def _schema_differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrate_creates_every_model_table(store: Store) -> None:
    async with store.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))

    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


async def test_migrate_twice_is_a_no_op(store: Store) -> None:
    await store.migrate()

    async with store.engine.connect() as connection:
        versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
    heads = migration_heads()
    assert {version for (version,) in versions} == heads
    assert len(versions) == len(heads)


async def test_migrated_schema_matches_the_models(store: Store) -> None:
    async with store.engine.connect() as connection:
        differences = await connection.run_sync(_schema_differences)

    assert differences == []


async def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(store: Store) -> None:
    async with store.engine.connect() as connection:
        journal = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
        foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
        busy_timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one()

    assert (journal, foreign_keys) == ("wal", 1)
    assert busy_timeout > 0


async def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(DBAPIError, match="FOREIGN KEY"):
        async with store.transaction() as unit:
            await unit.session.execute(
                text(
                    "INSERT INTO order_events (order_id, state, reason, occurred_at) "
                    "VALUES ('missing', 'NEW', '', '2024-01-01 00:00:00')"
                )
            )


async def test_transaction_commits_when_the_block_succeeds(store: Store) -> None:
    async with store.transaction() as unit:
        await unit.inbox.claim("risk", "message-1", T0)

    async with store.transaction() as unit:
        assert await unit.inbox.claim("risk", "message-1", T0) is False


async def test_transaction_rolls_back_when_the_block_raises(store: Store) -> None:
    async def failing_handler() -> None:
        async with store.transaction() as unit:
            await unit.inbox.claim("risk", "message-1", T0)
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await failing_handler()

    async with store.transaction() as unit:
        assert await unit.inbox.claim("risk", "message-1", T0) is True


async def test_timestamps_come_back_aware_utc_whatever_zone_went_in(store: Store) -> None:
    paris_winter = timezone(timedelta(hours=1))
    written = datetime(2024, 1, 2, 10, 30, 15, 123456, tzinfo=paris_winter)

    async with store.transaction() as unit:
        await unit.snapshots.add("paper", written, cash=1.0, equity=1.0)
    async with store.transaction() as unit:
        (snapshot,) = await unit.snapshots.list("paper")

    assert snapshot.taken_at == written
    assert snapshot.taken_at.tzinfo is UTC
    assert snapshot.taken_at.hour == 9


async def test_naive_timestamps_are_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with store.transaction() as unit:
            await unit.snapshots.add("paper", datetime(2024, 1, 2), cash=1.0, equity=1.0)


async def test_sync_engine_reads_what_the_async_engine_wrote(store: Store) -> None:
    async with store.transaction() as unit:
        await unit.snapshots.add("paper", T0, cash=10.0, equity=12.0)

    with store.sync_engine().connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM account_snapshots")).scalar_one()

    assert count == 1


async def test_sync_engine_is_read_only_by_default(store: Store) -> None:
    engine = store.sync_engine()

    with engine.connect() as connection, pytest.raises(OperationalError, match="readonly"):
        connection.execute(text("DELETE FROM processed_messages"))


def test_unsupported_database_url_is_refused() -> None:
    with pytest.raises(UnsupportedDatabaseError, match="unsupported database URL driver"):
        Store("mysql://user@host/db")


def test_create_database_if_missing_makes_the_sqlite_directory(tmp_path: Path) -> None:
    directory = tmp_path / "nested" / "deeper"

    created = create_database_if_missing(f"sqlite+aiosqlite:///{directory}/ledger.db")

    assert created is False
    assert directory.is_dir()


def test_connection_failures_are_outages_and_logic_errors_are_not() -> None:
    # Arrange
    refused = sqlalchemy.exc.OperationalError(
        "SELECT 1", {}, psycopg.OperationalError("connection refused")
    )
    lost = sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("server closed"))
    lost.connection_invalidated = True
    duplicate = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    wrapped = RuntimeError("handler failed")
    wrapped.__cause__ = refused
    # Act / Assert
    assert is_database_unavailable(refused)
    assert is_database_unavailable(lost)
    assert is_database_unavailable(wrapped)
    assert is_database_unavailable(ConnectionResetError("reset by peer"))
    assert not is_database_unavailable(duplicate)
    assert not is_database_unavailable(ValueError("bad price"))


async def test_a_missing_sqlite_table_is_no_outage(tmp_path: Path) -> None:
    # Arrange: a database that was never migrated
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    # Act
    with pytest.raises(sqlalchemy.exc.OperationalError) as raised:
        async with store.transaction() as unit:
            await unit.orders.get("ord-1")
    await store.close()
    # Assert
    assert not is_database_unavailable(raised.value)


async def test_store_bars_waits_out_a_database_outage(
    store: Store, monkeypatch: pytest.MonkeyPatch, make_bar: Callable[..., BarClosed]
) -> None:
    # Arrange: the first two transactions find the database down
    real_transaction = store.transaction
    attempts: list[int] = []

    def flaky_transaction() -> Any:
        attempts.append(len(attempts) + 1)
        if len(attempts) <= 2:
            raise ConnectionRefusedError("database restarting")
        return real_transaction()

    monkeypatch.setattr(store, "transaction", flaky_transaction)
    bar = make_bar(close=1.15)
    # Act
    written = await store.store_bars([bar])
    # Assert: written on the third attempt
    monkeypatch.undo()
    async with store.transaction() as unit:
        stored = await unit.ohlcv.latest("EURUSD", Timeframe.H1)
    assert written == 1
    assert attempts == [1, 2, 3]
    assert [item.close for item in stored] == [1.15]


async def test_store_bars_gives_up_on_an_error_that_is_no_outage(
    store: Store, monkeypatch: pytest.MonkeyPatch, make_bar: Callable[..., BarClosed]
) -> None:
    def broken_transaction() -> Any:
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(store, "transaction", broken_transaction)
    bar = make_bar(close=1.15)
    with pytest.raises(ValueError, match="a bug"):
        await store.store_bars([bar])
