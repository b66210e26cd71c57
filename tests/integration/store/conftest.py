"""Fixtures for the store's integration tests: a fresh PostgreSQL database and Redis."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import make_url

from tai_events import BarClosed, OrderApproved, Side, Timeframe
from tai_store import Store, create_database_if_missing, drop_database_if_exists

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _database_url(name: str) -> str:
    base = make_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    return base.set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False
    )


@pytest.fixture(scope="session")
def new_postgres_database() -> Iterator[Callable[[], str]]:
    """Create uniquely named databases on demand; drop them all at the end of the session."""
    created: list[str] = []

    def create() -> str:
        url = _database_url(f"tai_test_{uuid.uuid4().hex}")
        create_database_if_missing(url)
        created.append(url)
        return url

    yield create
    for url in created:
        drop_database_if_exists(url)


@pytest.fixture(scope="session")
def postgres_url(new_postgres_database: Callable[[], str]) -> str:
    """Return the session's migrated database."""
    url = new_postgres_database()

    async def migrate() -> None:
        store = Store(url)
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(migrate())
    return url


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[Store]:
    store = Store(postgres_url)
    yield store
    await store.close()


@pytest.fixture
async def fresh_pg_store(new_postgres_database: Callable[[], str]) -> AsyncIterator[Store]:
    """A migrated database of its own (tests that need an empty outbox)."""
    store = Store(new_postgres_database())
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Return ids unique to this test (the session database is shared)."""
    suffix = uuid.uuid4().hex[:12]
    return lambda name: f"{name}-{suffix}"


@pytest.fixture
def make_bar() -> Callable[..., BarClosed]:
    def build(opened_at: datetime = T0, *, symbol: str = "EURUSD", close: float = 1.1) -> BarClosed:
        return BarClosed(
            symbol=symbol,
            timeframe=Timeframe.H1,
            opened_at=opened_at,
            closed_at=opened_at + Timeframe.H1.duration,
            open=1.0,
            high=max(1.2, close),
            low=min(0.9, close),
            close=close,
            volume=100.0,
            source="replay",
        )

    return build


@pytest.fixture
def make_approval() -> Callable[..., OrderApproved]:
    def build(approval_id: str, order_id: str) -> OrderApproved:
        return OrderApproved(
            approval_id=approval_id,
            order_id=order_id,
            strategy="trend",
            symbol="EURUSD",
            side=Side.BUY,
            quantity=1000.0,
            requested_quantity=1000.0,
            price_floor=1.09,
            price_ceiling=1.11,
            signal_time=T0,
            issued_at=T0,
            expires_at=T0 + timedelta(seconds=30),
            key_id="0123456789abcdef",
            signature="A" * 86,
        )

    return build
