"""Unauthenticated, forged-token and under-privileged API and console calls: all refused.

The gateway runs with an in-memory bus and a SQLite store; control refusals must reach the
append-only audit log, and a refused control action should raise an alert.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import FakeClock
from tai_events import AlertRaised, Envelope, Message
from tai_events.topics import ALL_ALERTS, ALL_CONTROL, CONTROL_EXCHANGE
from tai_gateway.app import GatewayApp, create_app
from tai_gateway.auth import PasswordHashing, Principal, Role, TokenSigner
from tai_store import Store
from tai_telemetry import Telemetry
from tests.unit.gateway.gateway_support import (
    ADMIN_PASSWORD,
    SECRET,
    T0,
    TRADER_PASSWORD,
    VIEWER_PASSWORD,
    add_user,
    bearer,
    fast_hasher,
    make_settings,
    token_for,
)

pytestmark = pytest.mark.integration

PROTECTED_READS = [
    "/api/fills",
    "/api/orders",
    "/api/positions",
    "/api/equity",
    "/api/trades",
    "/api/audit",
    "/api/system/queues",
    "/api/system/dead-letters",
]
CONTROL = {
    "/api/control/halt": ({"reason": "attack"}, "halt_trading"),
    "/api/control/resume": ({"reason": "attack"}, "resume_trading"),
    "/api/control/flatten": ({"symbol": "EURUSD"}, "flatten_positions"),
}


class Gateway:
    """The app, an HTTP client on it, and what its bus carried."""

    def __init__(
        self, app: GatewayApp, client: httpx.AsyncClient, bus: InMemoryBus, store: Store
    ) -> None:
        self.app = app
        self.store = store
        self.client = client
        self.bus = bus
        self.commands: list[Message] = []
        self.alerts: list[AlertRaised] = []


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
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
        make_settings(api_rate_limit_per_minute=1000),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=Telemetry(service="gateway"),
        password_hasher=fast_hasher(),
    )
    await app.start()
    transport = httpx.ASGITransport(app=app.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        running = Gateway(app, client, bus, store)

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


async def _audit(gateway: Gateway, action: str) -> list[tuple[str, str]]:
    async with gateway.store.transaction() as unit:
        entries = await unit.audit.list(action=action)
    return [(entry.actor, entry.outcome) for entry in entries]


@pytest.mark.parametrize("path", PROTECTED_READS)
async def test_unauthenticated_read_is_refused(gateway: Gateway, path: str) -> None:
    response = await gateway.client.get(path)
    assert response.status_code == 401


@pytest.mark.parametrize("path", list(CONTROL))
async def test_unauthenticated_control_is_refused_and_nothing_is_published(
    gateway: Gateway, path: str
) -> None:
    body, _action = CONTROL[path]
    response = await gateway.client.post(path, json=body)
    await gateway.bus.drain()
    assert response.status_code == 401
    assert gateway.commands == []


def _claims(token: str) -> dict[str, object]:
    payload = token.partition(".")[0]
    loaded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return loaded


def _encode(claims: dict[str, object]) -> str:
    raw = json.dumps(claims, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@pytest.mark.parametrize(
    "forgery", ["foreign-secret", "role-raised", "unsigned", "expired", "garbage"]
)
async def test_forged_tokens_are_refused(gateway: Gateway, forgery: str) -> None:
    # Arrange: an admin token as an attacker could make it
    clock = FakeClock(T0)
    admin = Principal("alice", Role.ADMIN)
    viewer_token = await token_for(gateway.client, "victor", VIEWER_PASSWORD)
    if forgery == "foreign-secret":
        token = TokenSigner(b"k" * 48, clock, timedelta(hours=1)).issue(admin).token
    elif forgery == "role-raised":
        claims = {**_claims(viewer_token), "role": "admin"}
        token = f"{_encode(claims)}.{viewer_token.partition('.')[2]}"
    elif forgery == "unsigned":
        token = f"{_encode({'sub': 'alice', 'role': 'admin', 'exp': 2**40})}."
    elif forgery == "expired":
        past = FakeClock(T0 - timedelta(days=2))
        token = TokenSigner(SECRET.encode(), past, timedelta(hours=1)).issue(admin).token
    else:
        token = "not-a-token"
    # Act
    response = await gateway.client.post(
        "/api/control/halt", json={"reason": "forged"}, headers=bearer(token)
    )
    await gateway.bus.drain()
    # Assert
    assert response.status_code == 401
    assert gateway.commands == []


@pytest.mark.parametrize("user", [("victor", VIEWER_PASSWORD), ("tom", TRADER_PASSWORD)])
@pytest.mark.parametrize("path", list(CONTROL))
async def test_under_privileged_control_is_refused_and_audited(
    gateway: Gateway, user: tuple[str, str], path: str
) -> None:
    # Arrange
    name, password = user
    token = await token_for(gateway.client, name, password)
    body, action = CONTROL[path]
    # Act
    response = await gateway.client.post(path, json=body, headers=bearer(token))
    await gateway.bus.drain()
    # Assert
    assert response.status_code == 403
    assert gateway.commands == []
    assert await _audit(gateway, action) == [(name, "denied")]


async def test_viewer_cannot_read_the_audit_log(gateway: Gateway) -> None:
    token = await token_for(gateway.client, "victor", VIEWER_PASSWORD)
    response = await gateway.client.get("/api/audit", headers=bearer(token))
    assert response.status_code == 403


async def test_console_without_a_session_sends_to_login(gateway: Gateway) -> None:
    client = gateway.app.dash_app.server.test_client()
    page = await asyncio.to_thread(client.get, "/")
    assert page.status_code in {302, 303}
    assert "/login" in page.headers["Location"]
    update = await asyncio.to_thread(client.post, "/_dash-update-component", json={})
    assert update.status_code in {401, 403}


@pytest.mark.xfail(
    strict=True,
    reason="the gateway audits refused control calls but publishes no AlertRaised for them",
)
async def test_refused_control_call_raises_an_alert(gateway: Gateway) -> None:
    token = await token_for(gateway.client, "victor", VIEWER_PASSWORD)
    await gateway.client.post("/api/control/halt", json={}, headers=bearer(token))
    await gateway.bus.drain()
    assert [alert.code for alert in gateway.alerts] != []
