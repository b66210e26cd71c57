"""Fixtures of the security tests: the gateway on an in-memory bus and a SQLite ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import FakeClock
from tai_events import AlertRaised, Envelope, Message
from tai_events.topics import ALL_ALERTS, ALL_CONTROL, CONTROL_EXCHANGE
from tai_gateway.app import create_app
from tai_gateway.auth import PasswordHashing
from tai_store import Store
from tai_telemetry import Telemetry
from tests.security.gateway_harness import Gateway
from tests.unit.gateway.gateway_support import (
    ADMIN_PASSWORD,
    T0,
    TRADER_PASSWORD,
    VIEWER_PASSWORD,
    add_user,
    fast_hasher,
    make_settings,
)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Settings a test module changes (override this fixture in the module)."""
    return {}


@pytest.fixture
async def gateway(tmp_path: Path, settings_overrides: dict[str, object]) -> AsyncIterator[Gateway]:
    clock = FakeClock(T0)
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await store.migrate()
    hashing = PasswordHashing(fast_hasher())
    for name, password, role in (
        ("alice", ADMIN_PASSWORD, "admin"),
        ("tom", TRADER_PASSWORD, "trader"),
        ("victor", VIEWER_PASSWORD, "viewer"),
    ):
        await add_user(store, hashing, name, password, role)
    bus = InMemoryBus("gateway", clock=clock)
    await bus.start()
    app = create_app(
        make_settings(**{"api_rate_limit_per_minute": 1000, **settings_overrides}),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=Telemetry(service="gateway"),
        password_hasher=fast_hasher(),
    )
    await app.start()
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        running = Gateway(app, client, bus, store, clock)

        async def command(envelope: Envelope[Message]) -> None:
            running.commands.append(envelope.message)

        async def alert(envelope: Envelope[Message]) -> None:
            assert isinstance(envelope.message, AlertRaised)
            running.alerts.append(envelope.message)

        await bus.subscribe(
            Subscription("test.control", [Binding(ALL_CONTROL, CONTROL_EXCHANGE)], command)
        )
        await bus.subscribe(Subscription("test.alerts", [Binding(ALL_ALERTS)], alert))
        yield running
    await app.stop()
    await bus.close()
    await store.close()
