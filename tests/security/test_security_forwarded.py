"""Forwarded headers are believed only from trusted proxies; the console login is rate limited.

Issue 16: uvicorn honoured ``X-Forwarded-For`` from anyone on loopback, so the per-address
rate limit was bypassed by inventing addresses and the audit log recorded spoofed sources;
the console's ``/login`` had no rate limit at all. These tests run the gateway's real
uvicorn servers on free ports.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from a2wsgi import WSGIMiddleware

from tai_gateway.app import server_config
from tai_gateway.config import GatewaySettings
from tests.security.gateway_harness import Gateway
from tests.unit.gateway.gateway_support import make_settings

pytestmark = pytest.mark.integration

RATE_LIMIT = 4


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"api_rate_limit_per_minute": RATE_LIMIT}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def _serving(app: object, settings: GatewaySettings) -> AsyncIterator[str]:
    port = _free_port()
    server = uvicorn.Server(server_config(settings, app, "127.0.0.1", port))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn's Server offers no started event
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _spoofed_logins(base_url: str, count: int) -> list[int]:
    statuses = []
    async with httpx.AsyncClient(base_url=base_url) as client:
        for number in range(count):
            response = await client.post(
                "/api/token",
                data={"username": "alice", "password": "guess-password-1"},
                headers={"X-Forwarded-For": f"198.18.{number}.1"},
            )
            statuses.append(response.status_code)
    return statuses


async def test_invented_forwarded_addresses_do_not_escape_the_rate_limit(
    gateway: Gateway,
) -> None:
    # Arrange: the gateway as deployed by default (no trusted proxy)
    async with _serving(gateway.app.api, gateway.app.settings) as base_url:
        # Act: each request claims another client address
        statuses = await _spoofed_logins(base_url, RATE_LIMIT + 2)
    # Assert: the limit still counts the real peer, and the audit log names it
    assert statuses[-1] == 429
    async with gateway.store.transaction() as unit:
        sources = {entry.details["source"] for entry in await unit.audit.list(action="login")}
    assert sources == {"127.0.0.1"}


async def test_a_configured_proxy_is_believed(gateway: Gateway) -> None:
    # Arrange: loopback is the (trusted) reverse proxy
    settings = make_settings(trusted_proxies="127.0.0.1/32", api_rate_limit_per_minute=RATE_LIMIT)
    async with _serving(gateway.app.api, settings) as base_url:
        await _spoofed_logins(base_url, 2)
    async with gateway.store.transaction() as unit:
        sources = {entry.details["source"] for entry in await unit.audit.list(action="login")}
    assert sources == {"198.18.0.1", "198.18.1.1"}


async def test_the_console_login_is_rate_limited_per_address(gateway: Gateway) -> None:
    # Arrange: the console's real server
    console = WSGIMiddleware(gateway.app.dash_app.server, workers=2)
    async with (
        _serving(console, gateway.app.settings) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        statuses = []
        # Act: sign-in attempts from one address, each claiming another
        for number in range(RATE_LIMIT + 2):
            page = await client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token is not None
            response = await client.post(
                "/login",
                data={
                    "csrf_token": token.group(1),
                    "username": "alice",
                    "password": "guess-password-1",
                },
                headers={"X-Forwarded-For": f"198.18.{number}.1"},
            )
            statuses.append(response.status_code)
    # Assert
    assert statuses[-1] == 429
    assert "Retry-After" in response.headers


def test_a_wildcard_trusted_proxy_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="trust forwarded headers from anyone"):
        make_settings(trusted_proxies="*")
