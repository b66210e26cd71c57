"""The kill switch nobody can lock out: an operator-signed halt that needs no login.

Issue 16: failing five logins for ``admin`` locked every admin out, and with them halt,
resume and flatten. ``trading-ai control halt`` signs a short-lived request with the
operator key; the gateway checks it and publishes the halt; risk halts. These tests run the
embedded system (in-memory bus, SQLite, the gateway's real HTTP servers) and the real CLI.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tai_cli.commands import app as cli
from tai_cli.embedded import EmbeddedOptions, EmbeddedSystem
from tai_core.breakglass import OperatorSigner
from tai_core.signing import generate_private_key_pem

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Running:
    """The embedded system with its gateway serving, and where."""

    system: EmbeddedSystem
    api_url: str
    operator_key: Path


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    options = EmbeddedOptions(
        data_directory=tmp_path / "data",
        serve_console=True,
        api_port=_free_port(),
        console_port=_free_port(),
    )
    system = EmbeddedSystem(options)
    await system.start()
    try:
        async with asyncio.timeout(30):
            while system.gateway is None or not system.gateway.started_servers:  # noqa: ASYNC110 - uvicorn has no started event
                await asyncio.sleep(0.02)
        yield Running(
            system, f"http://127.0.0.1:{options.api_port}", system.operator_keys.private_key
        )
    finally:
        await system.stop()


async def _trading_state(system: EmbeddedSystem) -> str | None:
    async with system.store.transaction() as unit:
        current = await unit.trading_state.current()
    return None if current is None else current.state


async def _halt_with_the_cli(running: Running, key: Path) -> tuple[int, str]:
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        [
            "control",
            "halt",
            "--reason",
            "admins locked out",
            "--key",
            str(key),
            "--api-url",
            running.api_url,
        ],
    )
    return result.exit_code, result.output


async def test_the_operator_halts_trading_while_every_admin_login_is_throttled(
    running: Running,
) -> None:
    # Arrange: an attacker hammers "admin" from this very machine until it is throttled
    async with httpx.AsyncClient(base_url=running.api_url) as client:
        statuses = [
            (
                await client.post(
                    "/api/token", data={"username": "admin", "password": "guess-password-1"}
                )
            ).status_code
            for _ in range(8)
        ]
    assert statuses[-1] == 429
    # Act: the operator pulls the break-glass halt
    exit_code, output = await _halt_with_the_cli(running, running.operator_key)
    # Assert: the command reached risk, which halted, and the audit log says who and why
    assert exit_code == 0, output
    assert "HaltTrading" in output
    assert await _trading_state(running.system) == "HALTED"
    async with running.system.store.transaction() as unit:
        audit = await unit.audit.list(action="halt_trading")
    assert [entry.outcome for entry in audit] == ["published"]
    assert audit[0].actor.startswith("operator:")
    assert audit[0].details["channel"] == "break_glass"


async def test_a_key_the_gateway_does_not_know_cannot_halt(
    running: Running, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(generate_private_key_pem())
    exit_code, output = await _halt_with_the_cli(running, stranger)
    assert exit_code == 1
    assert "unknown operator key" in " ".join(output.split())
    assert await _trading_state(running.system) != "HALTED"
    async with running.system.store.transaction() as unit:
        audit = await unit.audit.list(action="halt_trading")
    assert [(entry.actor, entry.outcome) for entry in audit] == [("anonymous", "unauthenticated")]


async def test_a_replayed_or_altered_request_is_refused(running: Running) -> None:
    # Arrange: one genuinely signed request
    signer = OperatorSigner.from_pem(running.operator_key.read_bytes())
    request = signer.sign("halt_trading", "drill", datetime.now(UTC)).as_json()
    async with httpx.AsyncClient(base_url=running.api_url) as client:
        # Act
        first = await client.post("/api/control/break-glass", json=request)
        again = await client.post("/api/control/break-glass", json=request)
        altered = await client.post(
            "/api/control/break-glass",
            json={**request, "request_id": "0" * 32, "reason": "something else"},
        )
    # Assert
    assert first.status_code == 202
    assert (again.status_code, altered.status_code) == (403, 403)
    assert "already used" in again.json()["detail"]
