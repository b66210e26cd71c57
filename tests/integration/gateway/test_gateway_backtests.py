"""Backtests started through the API run ``trading-ai backtest`` and keep their reports."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tai_bus import InMemoryBus
from tai_core.clock import SystemClock
from tai_gateway.app import GatewayApp, create_app
from tai_gateway.auth import PasswordHashing
from tai_ingestion.samples import sample_path
from tai_store import Store
from tai_telemetry import Telemetry

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "admin-password-123"
VIEWER_PASSWORD = "viewer-password-123"


@pytest.fixture
async def research_gateway(tmp_path: Path) -> AsyncIterator[GatewayApp]:
    from argon2 import PasswordHasher  # noqa: PLC0415

    from tai_gateway.config import GatewaySettings  # noqa: PLC0415

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_path("GOOG.csv"), data / "GOOG.csv")
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await store.migrate()
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    hashing = PasswordHashing(hasher)
    async with store.transaction() as unit:
        await unit.users.add("alice", hashing.hash(ADMIN_PASSWORD), "admin", SystemClock().now())
        await unit.users.add("victor", hashing.hash(VIEWER_PASSWORD), "viewer", SystemClock().now())
    bus = InMemoryBus("gateway")
    settings = GatewaySettings.model_validate(
        {
            "session_secret": "integration-session-secret-0123456789abcdef",
            "research_directory": str(tmp_path / "runs"),
            "research_data_directory": str(data),
        }
    )
    app = create_app(
        settings,
        bus=bus,
        store=store,
        clock=SystemClock(),
        telemetry=Telemetry(service="gateway"),
        password_hasher=hasher,
    )
    await app.start()
    await bus.start()
    yield app
    await app.stop()
    await bus.close()
    await store.close()


async def token(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    response = await client.post("/api/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_a_backtest_started_through_the_api_finishes_with_its_report(
    research_gateway: GatewayApp,
) -> None:
    transport = httpx.ASGITransport(app=research_gateway.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        # Arrange
        admin = await token(client, "alice", ADMIN_PASSWORD)
        viewer = await token(client, "victor", VIEWER_PASSWORD)
        assert (await client.get("/api/backtests/data-files", headers=admin)).json() == ["GOOG.csv"]
        request = {
            "strategy": "sma_cross",
            "data_file": "GOOG.csv",
            "cash": 10_000,
            "commission": 0.002,
            "parameters": {"fast": 10, "slow": 20},
        }
        # Act
        refused = await client.post("/api/backtests", json=request, headers=viewer)
        escaping = await client.post(
            "/api/backtests", json={**request, "data_file": "../ledger.db"}, headers=admin
        )
        started = await client.post("/api/backtests", json=request, headers=admin)
        run_id = started.json()["run_id"]
        finished = await research_gateway.context.backtests.wait(run_id)
        fetched = await client.get(f"/api/backtests/{run_id}", headers=viewer)
        listed = await client.get("/api/backtests", headers=viewer)
    # Assert
    assert refused.status_code == 403
    assert escaping.status_code == 422
    assert started.status_code == 202, started.text
    assert finished is not None
    assert finished.state == "succeeded", finished.error
    body = fetched.json()
    assert body["summary"]["trades"] == body["report"]["trades"] > 0
    assert body["report"]["parameters"]["fast"] == 10
    assert [run["run_id"] for run in listed.json()] == [run_id]


async def test_a_failing_backtest_reports_its_error(research_gateway: GatewayApp) -> None:
    from tai_gateway.backtests import BacktestRequest  # noqa: PLC0415

    runner = research_gateway.context.backtests
    run = await runner.start(
        BacktestRequest(strategy="no_such_strategy", data_file="GOOG.csv"), "alice"
    )
    finished = await runner.wait(run.run_id)
    assert finished is not None
    assert finished.state == "failed"
    assert finished.error
