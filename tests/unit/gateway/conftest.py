"""Fixtures of the gateway's unit tests: a SQLite store, an in-memory bus, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from gateway_support import (
    ADMIN_PASSWORD,
    T0,
    TRADER_PASSWORD,
    VIEWER_PASSWORD,
    add_user,
    fast_hasher,
    make_settings,
)

from tai_bus import InMemoryBus
from tai_core.clock import FakeClock
from tai_gateway.app import GatewayApp, create_app
from tai_gateway.auth import PasswordHashing
from tai_store import Store
from tai_telemetry import Telemetry


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    ledger = Store(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await ledger.migrate()
    yield ledger
    await ledger.close()


@pytest.fixture
async def bus(clock: FakeClock) -> AsyncIterator[InMemoryBus]:
    memory_bus = InMemoryBus("gateway", clock=clock)
    await memory_bus.start()
    yield memory_bus
    await memory_bus.close()


@pytest.fixture
def hashing() -> PasswordHashing:
    return PasswordHashing(fast_hasher())


@pytest.fixture
async def users(store: Store, hashing: PasswordHashing) -> None:
    await add_user(store, hashing, "alice", ADMIN_PASSWORD, "admin")
    await add_user(store, hashing, "tom", TRADER_PASSWORD, "trader")
    await add_user(store, hashing, "victor", VIEWER_PASSWORD, "viewer")


@pytest.fixture
async def gateway(
    store: Store, bus: InMemoryBus, clock: FakeClock, users: None
) -> AsyncIterator[GatewayApp]:
    app = create_app(
        make_settings(api_rate_limit_per_minute=30),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=Telemetry(service="gateway"),
        password_hasher=fast_hasher(),
    )
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def api_client(gateway: GatewayApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client
