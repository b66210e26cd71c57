"""On PostgreSQL: the ledger's keyset pages (what the API's paged lists run) on real SQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import make_url

from tai_core.clock import FakeClock
from tai_gateway.ledger import GatewayLedger
from tai_gateway.paging import PageRequest
from tai_store import Store, create_database_if_missing, drop_database_if_exists
from tests.factories import make_fill

pytestmark = [pytest.mark.integration]

T0 = datetime(2024, 3, 4, 12, tzinfo=UTC)
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    base = make_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    url = base.set(
        drivername="postgresql+psycopg", database=f"tai_paging_{uuid.uuid4().hex[:12]}"
    ).render_as_string(hide_password=False)
    create_database_if_missing(url)
    ledger_store = Store(url)
    try:
        await ledger_store.migrate()
        yield ledger_store
    finally:
        await ledger_store.close()
        drop_database_if_exists(url)


async def test_pages_of_fills_partition_them_newest_first_on_postgres(store: Store) -> None:
    # Arrange: pairs of fills share an instant, so the key breaks ties
    async with store.transaction() as unit:
        for number in range(10):
            await unit.fills.add(make_fill(number, T0 + timedelta(minutes=number // 2)))
    ledger = GatewayLedger(store, FakeClock(T0), "paper")
    request = PageRequest(3, since=T0 + timedelta(minutes=1))
    seen: list[str] = []
    # Act
    while True:
        frame, cursor = ledger.fills_page(request)
        seen += list(frame["fill_id"])
        if cursor is None:
            break
        request = PageRequest(3, cursor, since=request.since)
    # Assert: fills 2..9 (minute >= 1), newest first, each once
    assert seen == [f"fill-{number:02d}" for number in range(9, 1, -1)]
