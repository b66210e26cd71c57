"""The Store: one async engine on PostgreSQL (psycopg 3) or SQLite (aiosqlite), and migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from tai_core.files import PRIVATE_DIRECTORY_MODE, ensure_private_file
from tai_core.outage import DEFAULT_OUTAGE_PATIENCE_SECONDS, waiting_out_outages
from tai_events.market import BarClosed
from tai_store.repositories import UPSERT_CHUNK, UnitOfWork, ohlcv_rows, ohlcv_upsert

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer waits for the lock before failing (embedded mode, one process)."""
POSTGRESQL_POOL_SIZE = 10
POSTGRESQL_MAX_OVERFLOW = 10
# Serialises concurrent `migrate()` calls of services starting at the same time.
MIGRATION_LOCK_KEY = 0x7A1_5703E


class UnsupportedDatabaseError(ValueError):
    """The URL names a database or driver the store does not support."""


def is_database_unavailable(error: BaseException) -> bool:
    """Return True when an error means the database cannot be reached right now.

    Connection refused or lost, the server shutting down or still recovering, a pool time-out:
    the same work succeeds once the database is back. Constraint violations, SQL errors and
    bugs are not included (retrying them cannot help).
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(
            current,
            sqlalchemy.exc.OperationalError
            | sqlalchemy.exc.InterfaceError
            | sqlalchemy.exc.DisconnectionError
            | sqlalchemy.exc.TimeoutError
            | psycopg.OperationalError
            | psycopg.InterfaceError
            | ConnectionError,
        ):
            return not _is_sqlite_logic_error(current)
        current = current.__cause__ or current.__context__
    return False


def _is_sqlite_logic_error(error: BaseException) -> bool:
    # SQLite reports "no such table" and friends as OperationalError: those are not outages.
    text_of_error = str(error).lower()
    return "sqlite" in type(getattr(error, "orig", error)).__module__ and (
        "locked" not in text_of_error and "busy" not in text_of_error
    )


def _parse(url: str | URL) -> URL:
    parsed = make_url(url)
    if parsed.drivername not in {"postgresql+psycopg", "sqlite+aiosqlite"}:
        raise UnsupportedDatabaseError(
            f"unsupported database URL driver {parsed.drivername!r}: use "
            "'postgresql+psycopg://user@host/db' or 'sqlite+aiosqlite:///path/to/file.db'"
        )
    return parsed


def _is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in {None, "", ":memory:"}


def _configure_sqlite_connection(dbapi_connection: Any, *, read_only: bool) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if not read_only:
            # WAL lets dashboards read while services write; NORMAL is durable in WAL mode.
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        else:
            cursor.execute("PRAGMA query_only = ON")
    finally:
        cursor.close()


def _private_sqlite_files(database: Path) -> None:
    """Create the ledger file owner-only (0600) and keep it, its WAL and shm files, so.

    The ledger holds password hashes and the account's history: no other local user may read
    it. SQLite gives the WAL and shm files the database file's mode; older ones are fixed too.
    A missing parent directory is created 0700 (an existing one is left as it is: it may be
    shared, like /tmp).
    """
    if not database.parent.exists():
        database.parent.mkdir(parents=True, mode=PRIVATE_DIRECTORY_MODE)
    ensure_private_file(database)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = database.with_name(database.name + suffix)
        if companion.exists():
            ensure_private_file(companion)


def _alembic_config() -> Config:
    config = Config()
    location = resources.files("tai_store") / "migrations"
    config.set_main_option("script_location", str(location))
    return config


class Store:
    """The ledger database: transactions, migrations and a sync engine for reports.

    ``Store("postgresql+psycopg://user@host/db")`` or ``Store("sqlite+aiosqlite:///ledger.db")``.
    Create one per process in the composition root and ``await store.close()`` on shutdown.
    """

    def __init__(self, url: str | URL, *, echo: bool = False) -> None:
        self._url = _parse(url)
        self._sync_engines: dict[bool, Engine] = {}
        if self.dialect == "sqlite":
            self._engine = self._create_sqlite_engine(echo=echo)
        else:
            self._engine = create_async_engine(
                self._url,
                echo=echo,
                pool_size=POSTGRESQL_POOL_SIZE,
                max_overflow=POSTGRESQL_MAX_OVERFLOW,
                pool_pre_ping=True,
                pool_recycle=1800,
            )
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        self._market_engine: AsyncEngine | None = None

    def _create_sqlite_engine(self, *, echo: bool) -> AsyncEngine:
        memory = _is_sqlite_memory(self._url)
        if not memory and self._url.database:
            _private_sqlite_files(Path(self._url.database))
        engine = create_async_engine(
            self._url,
            echo=echo,
            # An in-memory database lives in its one connection: share it.
            poolclass=StaticPool if memory else None,
            connect_args={"check_same_thread": False} if memory else {},
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            _configure_sqlite_connection(dbapi_connection, read_only=False)
            # Take over transaction control from the driver (see "begin" below).
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Connection) -> None:
            # IMMEDIATE takes the write lock up front, so a transaction never fails halfway
            # when it upgrades from reading to writing; waiting writers honour busy_timeout.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    @property
    def dialect(self) -> str:
        """Return ``"postgresql"`` or ``"sqlite"``."""
        return self._url.get_backend_name()

    @property
    def url(self) -> URL:
        """Return the database URL (render with ``hide_password=True`` before logging)."""
        return self._url

    @property
    def engine(self) -> AsyncEngine:
        """Return the async engine (for tests and advanced use; prefer ``transaction()``)."""
        return self._engine

    async def migrate(self) -> None:
        """Upgrade the schema to the newest Alembic revision (idempotent, concurrency-safe)."""
        async with self._engine.begin() as connection:
            if self.dialect == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            await connection.run_sync(_upgrade_to_head)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """Open a unit of work: committed when the block succeeds, rolled back if it raises."""
        async with self._sessions() as session, session.begin():
            yield UnitOfWork(session, self.dialect)

    async def store_bars(
        self,
        bars: Sequence[BarClosed],
        *,
        patience_seconds: float = DEFAULT_OUTAGE_PATIENCE_SECONDS,
    ) -> int:
        """Upsert bars as market data, waiting out a database outage.

        Ingestion stores every bar before publishing it: during a database restart it waits
        (with back-off) rather than skip or lose bars. On PostgreSQL the write does not wait
        for the disk flush: market data can be fetched again, so a server crash may lose the
        last fraction of a second of bars (never the ledger's rows, never half a bar). Return
        how many bars were written.
        """
        if not bars:
            return 0
        async for attempt in waiting_out_outages(
            is_database_unavailable, patience_seconds=patience_seconds
        ):
            with attempt:
                if self.dialect != "postgresql":
                    async with self.transaction() as unit:
                        return await unit.ohlcv.upsert_many(bars)
                # One round trip: an autocommitted statement on a connection that does not
                # wait for the flush (instead of BEGIN, SET LOCAL, INSERT, COMMIT).
                rows = ohlcv_rows(bars)
                async with self._market_data_engine().connect() as connection:
                    for start in range(0, len(rows), UPSERT_CHUNK):
                        await connection.execute(
                            ohlcv_upsert(self.dialect), rows[start : start + UPSERT_CHUNK]
                        )
                return len(rows)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _market_data_engine(self) -> AsyncEngine:
        """Return the PostgreSQL engine for market-data writes (autocommit, no flush wait)."""
        if self._market_engine is None:
            self._market_engine = create_async_engine(
                self._url,
                isolation_level="AUTOCOMMIT",
                pool_size=2,
                max_overflow=2,
                pool_pre_ping=True,
                connect_args={"options": "-c synchronous_commit=off"},
            )
        return self._market_engine

    def sync_engine(self, *, read_only: bool = True) -> Engine:
        """Return a sync Engine on the same database (dashboards, CLI reports).

        Read-only by default: SQLite connections set ``query_only``, PostgreSQL sessions
        ``default_transaction_read_only``. The engine is cached and disposed by ``close()``.
        """
        cached = self._sync_engines.get(read_only)
        if cached is not None:
            return cached
        if self.dialect == "sqlite":
            if _is_sqlite_memory(self._url):
                raise UnsupportedDatabaseError("an in-memory SQLite store has no sync engine")
            engine = create_engine(self._url.set(drivername="sqlite"))

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection: Any, _record: Any) -> None:
                _configure_sqlite_connection(dbapi_connection, read_only=read_only)

        else:
            options = "-c default_transaction_read_only=on" if read_only else ""
            engine = create_engine(
                self._url,
                pool_size=2,
                max_overflow=4,
                pool_pre_ping=True,
                connect_args={"options": options} if options else {},
            )
        self._sync_engines[read_only] = engine
        return engine

    async def close(self) -> None:
        """Dispose of every engine and its pooled connections."""
        for engine in self._sync_engines.values():
            await asyncio.to_thread(engine.dispose)
        self._sync_engines.clear()
        await self._engine.dispose()
        if self._market_engine is not None:
            await self._market_engine.dispose()
            self._market_engine = None


def migration_heads() -> set[str]:
    """Return the schema's Alembic head revisions (one per area branch)."""
    return set(ScriptDirectory.from_config(_alembic_config()).get_heads())


def _upgrade_to_head(connection: Connection) -> None:
    config = _alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "heads")


def _maintenance_connection(url: URL) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname="postgres",
        autocommit=True,
    )


def create_database_if_missing(url: str | URL) -> bool:
    """Create the PostgreSQL database named in ``url`` if absent; return True if created.

    Connects to the ``postgres`` maintenance database. For SQLite, create the file's
    directory and return False (the file itself appears on first connect).
    """
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        if not _is_sqlite_memory(parsed) and parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return False
    name = parsed.database
    if not name:
        raise UnsupportedDatabaseError("the PostgreSQL URL names no database")
    with _maintenance_connection(parsed) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if exists:
            return False
        try:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False  # created concurrently by another process: fine
        return True


def drop_database_if_exists(url: str | URL) -> None:
    """Drop the PostgreSQL database in ``url`` (closing its sessions), or delete a SQLite file."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        if not _is_sqlite_memory(parsed) and parsed.database:
            for suffix in ("", "-wal", "-shm"):
                Path(parsed.database + suffix).unlink(missing_ok=True)
        return
    if not parsed.database:
        raise UnsupportedDatabaseError("the PostgreSQL URL names no database")
    with _maintenance_connection(parsed) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(parsed.database)
            )
        )
