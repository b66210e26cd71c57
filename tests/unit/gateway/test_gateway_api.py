"""The REST API over a SQLite store and an in-memory bus."""

from __future__ import annotations

from datetime import timedelta

import httpx
from gateway_support import (
    ADMIN_PASSWORD,
    T0,
    TRADER_PASSWORD,
    VIEWER_PASSWORD,
    bearer,
    make_fill,
    token_for,
)

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import FakeClock
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.control import FlattenPositions, HaltTrading
from tai_events.topics import ALL_CONTROL, CONTROL_EXCHANGE
from tai_store import Store


async def control_commands(bus: InMemoryBus) -> list[Message]:
    """Subscribe a recorder to every control command and return its list."""
    received: list[Message] = []

    async def record(envelope: Envelope[Message]) -> None:
        received.append(envelope.message)

    await bus.subscribe(
        Subscription("test.control", [Binding(ALL_CONTROL, CONTROL_EXCHANGE)], record)
    )
    return received


async def audit_rows(store: Store, action: str) -> list[tuple[str, str]]:
    async with store.transaction() as unit:
        entries = await unit.audit.list(action=action)
    return [(entry.actor, entry.outcome) for entry in entries]


async def test_health_needs_no_authentication(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_reports_store_and_bus(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"store": True, "bus": True}}


async def test_metrics_expose_gateway_counters_to_admins(api_client: httpx.AsyncClient) -> None:
    await api_client.post("/api/token", data={"username": "alice", "password": "nope-nope-nope"})
    token = await token_for(api_client, "alice", ADMIN_PASSWORD)
    response = await api_client.get("/metrics", headers=bearer(token))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'tai_gateway_logins_total{channel="api",outcome="invalid_credentials"} 1.0' in (
        response.text
    )


async def test_wrong_password_gets_401_without_saying_which_part(
    api_client: httpx.AsyncClient,
) -> None:
    response = await api_client.post(
        "/api/token", data={"username": "alice", "password": "wrong-password-1"}
    )
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid username or password"


async def test_token_carries_the_role_and_lifetime(api_client: httpx.AsyncClient) -> None:
    response = await api_client.post(
        "/api/token", data={"username": "tom", "password": TRADER_PASSWORD}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["role"] == "trader"
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600


async def test_ledger_reads_need_a_token(api_client: httpx.AsyncClient) -> None:
    assert (await api_client.get("/api/fills")).status_code == 401
    forged = await api_client.get("/api/fills", headers=bearer("abc.def"))
    assert forged.status_code == 401


async def test_expired_token_is_refused(api_client: httpx.AsyncClient, clock: FakeClock) -> None:
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    clock.advance(timedelta(minutes=61))
    response = await api_client.get("/api/fills", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_viewer_reads_fills_newest_first(api_client: httpx.AsyncClient, store: Store) -> None:
    async with store.transaction() as unit:
        for number in (1, 2, 3):
            await unit.fills.add(make_fill(number))
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    response = await api_client.get("/api/fills", params={"limit": 2}, headers=bearer(token))
    assert response.status_code == 200
    assert [row["fill_id"] for row in response.json()] == ["fill-3", "fill-2"]
    assert response.json()[0]["filled_at"].startswith("2024-03-04T12:00:00")


async def test_equity_curve_is_returned_newest_first(
    api_client: httpx.AsyncClient, store: Store
) -> None:
    async with store.transaction() as unit:
        await unit.snapshots.add("paper", T0 + timedelta(hours=1), 100_000.0, 100_050.0)
        await unit.snapshots.add("paper", T0, 100_000.0, 100_000.0)
        await unit.snapshots.add("other", T0, 1.0, 1.0)
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    response = await api_client.get("/api/equity", headers=bearer(token))
    assert [row["equity"] for row in response.json()] == [100_050.0, 100_000.0]


async def test_out_of_range_limit_is_a_422_with_details(api_client: httpx.AsyncClient) -> None:
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    response = await api_client.get("/api/fills", params={"limit": 0}, headers=bearer(token))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]


async def test_risk_state_is_none_before_anything_is_known(
    api_client: httpx.AsyncClient,
) -> None:
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    response = await api_client.get("/api/risk/state", headers=bearer(token))
    body = response.json()
    assert body["source"] == "none"
    assert body["state"] is None
    assert body["changed_at"] is None


async def test_audit_log_is_for_admins_only(api_client: httpx.AsyncClient) -> None:
    trader = await token_for(api_client, "tom", TRADER_PASSWORD)
    admin = await token_for(api_client, "alice", ADMIN_PASSWORD)
    assert (await api_client.get("/api/audit", headers=bearer(trader))).status_code == 403
    response = await api_client.get("/api/audit", headers=bearer(admin))
    assert response.status_code == 200
    assert {row["action"] for row in response.json()} == {"login"}


async def test_admin_halt_publishes_halt_trading_and_audits(
    api_client: httpx.AsyncClient, bus: InMemoryBus, store: Store
) -> None:
    # Arrange
    received = await control_commands(bus)
    token = await token_for(api_client, "alice", ADMIN_PASSWORD)
    # Act
    response = await api_client.post(
        "/api/control/halt", json={"reason": "news spike"}, headers=bearer(token)
    )
    await bus.drain()
    # Assert
    assert response.status_code == 202
    assert response.json()["command"] == "HaltTrading"
    assert len(received) == 1
    command = received[0]
    assert isinstance(command, HaltTrading)
    assert (command.requested_by, command.reason, command.requested_at) == (
        "alice",
        "news spike",
        T0,
    )
    assert await audit_rows(store, "halt_trading") == [("alice", "published")]


async def test_trader_cannot_halt_and_the_refusal_is_audited(
    api_client: httpx.AsyncClient, bus: InMemoryBus, store: Store
) -> None:
    received = await control_commands(bus)
    token = await token_for(api_client, "tom", TRADER_PASSWORD)
    response = await api_client.post("/api/control/halt", json={}, headers=bearer(token))
    await bus.drain()
    assert response.status_code == 403
    assert received == []
    assert await audit_rows(store, "halt_trading") == [("tom", "denied")]


async def test_flatten_one_symbol(
    api_client: httpx.AsyncClient, bus: InMemoryBus, store: Store
) -> None:
    received = await control_commands(bus)
    token = await token_for(api_client, "alice", ADMIN_PASSWORD)
    response = await api_client.post(
        "/api/control/flatten", json={"symbol": "EURUSD"}, headers=bearer(token)
    )
    await bus.drain()
    assert response.status_code == 202
    assert isinstance(received[0], FlattenPositions)
    assert received[0].symbol == "EURUSD"
    assert await audit_rows(store, "flatten_positions") == [("alice", "published")]


async def test_flatten_with_a_bad_symbol_is_a_422(api_client: httpx.AsyncClient) -> None:
    token = await token_for(api_client, "alice", ADMIN_PASSWORD)
    response = await api_client.post(
        "/api/control/flatten", json={"symbol": "eur.usd"}, headers=bearer(token)
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "symbol"]


async def test_unknown_control_fields_are_refused(api_client: httpx.AsyncClient) -> None:
    token = await token_for(api_client, "alice", ADMIN_PASSWORD)
    response = await api_client.post(
        "/api/control/resume", json={"reason": "ok", "force": True}, headers=bearer(token)
    )
    assert response.status_code == 422


async def test_requests_beyond_the_rate_limit_get_429(api_client: httpx.AsyncClient) -> None:
    # The gateway fixture allows 30 requests per minute per user; the clock stands still.
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    statuses = [
        (await api_client.get("/api/positions", headers=bearer(token))).status_code
        for _ in range(31)
    ]
    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429
    refused = await api_client.get("/api/positions", headers=bearer(token))
    assert int(refused.headers["retry-after"]) >= 1
