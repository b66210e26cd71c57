"""The console's server-side security: sessions, CSRF, role checks inside callbacks."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from gateway_support import ADMIN_PASSWORD, VIEWER_PASSWORD, make_fill
from werkzeug.test import TestResponse

from tai_bus import Binding, InMemoryBus, Subscription
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.control import HaltTrading
from tai_events.topics import ALL_CONTROL, CONTROL_EXCHANGE
from tai_gateway.app import GatewayApp
from tai_gateway.console import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from tai_store import Store

HALT_CALLBACK = {
    "output": "halt-feedback.children",
    "outputs": {"id": "halt-feedback", "property": "children"},
    "inputs": [{"id": "halt-button", "property": "n_clicks", "value": 1}],
    "changedPropIds": ["halt-button.n_clicks"],
    "state": [{"id": "control-reason", "property": "value", "value": "forged"}],
}


async def call(function: Any, *args: Any, **kwargs: Any) -> TestResponse:
    """Run a blocking test-client call off the loop (the console bridges back onto it)."""
    response: TestResponse = await asyncio.to_thread(function, *args, **kwargs)
    return response


async def login(client: FlaskClient, username: str, password: str) -> TestResponse:
    page = await call(client.get, "/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match is not None
    return await call(
        client.post,
        "/login",
        data={"csrf_token": match.group(1), "username": username, "password": password},
    )


def csrf_header(client: FlaskClient) -> dict[str, str]:
    cookie = client.get_cookie(CSRF_COOKIE)
    assert cookie is not None
    return {CSRF_HEADER: cookie.value}


@pytest.fixture
def client(gateway: GatewayApp) -> FlaskClient:
    test_client: FlaskClient = gateway.dash_app.server.test_client()
    return test_client


@pytest.fixture
async def control_inbox(bus: InMemoryBus) -> list[Message]:
    received: list[Message] = []

    async def record(envelope: Envelope[Message]) -> None:
        received.append(envelope.message)

    await bus.subscribe(
        Subscription("test.console.control", [Binding(ALL_CONTROL, CONTROL_EXCHANGE)], record)
    )
    return received


async def audit_rows(store: Store, action: str) -> list[tuple[str, str]]:
    async with store.transaction() as unit:
        entries = await unit.audit.list(action=action)
    return [(entry.actor, entry.outcome) for entry in entries]


async def test_console_redirects_to_login_without_a_session(client: FlaskClient) -> None:
    response = await call(client.get, "/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login")


async def test_callbacks_without_a_session_are_refused(client: FlaskClient) -> None:
    response = await call(client.post, "/_dash-update-component", json=HALT_CALLBACK)
    assert response.status_code == 401


async def test_login_form_without_its_csrf_token_is_refused(client: FlaskClient) -> None:
    await call(client.get, "/login")
    response = await call(
        client.post, "/login", data={"username": "alice", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 403
    assert client.get_cookie(CSRF_COOKIE) is None


async def test_login_sets_a_strict_http_only_session_cookie(client: FlaskClient) -> None:
    response = await login(client, "alice", ADMIN_PASSWORD)
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    session_cookie = next(value for value in cookies if value.startswith(f"{SESSION_COOKIE}="))
    assert "HttpOnly" in session_cookie
    assert "SameSite=Strict" in session_cookie
    home = await call(client.get, "/")
    assert home.status_code == 200


async def test_secure_cookie_flag_follows_the_setting(gateway: GatewayApp) -> None:
    assert gateway.dash_app.server.config["SESSION_COOKIE_SECURE"] is False


async def test_wrong_password_shows_an_error_and_is_audited(
    client: FlaskClient, store: Store
) -> None:
    response = await login(client, "alice", "wrong-password-1")
    assert response.status_code == 401
    assert "invalid username or password" in response.get_data(as_text=True)
    assert await audit_rows(store, "login") == [("alice", "invalid_credentials")]


async def test_callback_without_the_csrf_header_is_refused(client: FlaskClient) -> None:
    await login(client, "alice", ADMIN_PASSWORD)
    response = await call(client.post, "/_dash-update-component", json=HALT_CALLBACK)
    assert response.status_code == 403


async def test_viewer_forged_halt_callback_is_refused_and_audited(
    client: FlaskClient, store: Store, bus: InMemoryBus, control_inbox: list[Message]
) -> None:
    # Arrange
    await login(client, "victor", VIEWER_PASSWORD)
    layout = await call(client.get, "/_dash-layout")
    assert "halt-button" not in layout.get_data(as_text=True)
    # Act
    response = await call(
        client.post, "/_dash-update-component", json=HALT_CALLBACK, headers=csrf_header(client)
    )
    await bus.drain()
    # Assert
    assert response.status_code == 403
    assert control_inbox == []
    assert await audit_rows(store, "halt_trading") == [("victor", "denied")]


async def test_admin_halt_callback_publishes_halt_trading(
    client: FlaskClient, store: Store, bus: InMemoryBus, control_inbox: list[Message]
) -> None:
    await login(client, "alice", ADMIN_PASSWORD)
    layout = await call(client.get, "/_dash-layout")
    assert "halt-button" in layout.get_data(as_text=True)
    response = await call(
        client.post, "/_dash-update-component", json=HALT_CALLBACK, headers=csrf_header(client)
    )
    await bus.drain()
    assert response.status_code == 200
    assert "HaltTrading sent" in response.get_data(as_text=True)
    assert [type(message) for message in control_inbox] == [HaltTrading]
    assert await audit_rows(store, "halt_trading") == [("alice", "published")]


async def test_live_refresh_shows_fills_from_the_bus(
    client: FlaskClient, gateway: GatewayApp, bus: InMemoryBus
) -> None:
    await login(client, "victor", VIEWER_PASSWORD)
    await bus.publish(make_fill(7))
    await bus.drain()
    outputs = [
        ("trading-state", "children"),
        ("trading-state", "className"),
        ("live-kpis", "children"),
        ("candles-symbol", "options"),
        ("candles-graph", "figure"),
        ("positions", "children"),
        ("open-orders", "children"),
        ("equity-graph", "figure"),
        ("fills", "children"),
        ("live-error", "children"),
        ("seen-version", "data"),
    ]
    body = {
        "output": ".." + "...".join(f"{key}.{prop}" for key, prop in outputs) + "..",
        "outputs": [{"id": key, "property": prop} for key, prop in outputs],
        "inputs": [
            {"id": "live-refresh", "property": "n_intervals", "value": 1},
            {"id": "candles-symbol", "property": "value", "value": None},
        ],
        "changedPropIds": ["live-refresh.n_intervals"],
        "state": [{"id": "seen-version", "property": "data", "value": None}],
    }
    response = await call(
        client.post, "/_dash-update-component", json=body, headers=csrf_header(client)
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "EURUSD" in text
    assert "7000.0" in text
    assert "ACTIVE" in text  # no recorded transition: risk's starting state
    assert f'"version": {gateway.live.version}' in text or f'"version":{gateway.live.version}' in (
        text
    )


def _callback(output: str, trigger: str, states: list[dict[str, Any]]) -> dict[str, Any]:
    key, prop = output.split(".")
    return {
        "output": output,
        "outputs": {"id": key, "property": prop},
        "inputs": [{"id": trigger, "property": "n_clicks", "value": 1}],
        "changedPropIds": [f"{trigger}.n_clicks"],
        "state": states,
    }


async def test_viewer_forged_strategy_change_is_refused_and_audited(
    client: FlaskClient, store: Store, bus: InMemoryBus, control_inbox: list[Message]
) -> None:
    await login(client, "victor", VIEWER_PASSWORD)
    body = _callback(
        "strategy-feedback.children",
        "disable-strategy-button",
        [
            {"id": "strategy-name", "property": "value", "value": "sma_cross"},
            {"id": "strategy-parameters", "property": "value", "value": ""},
        ],
    )
    body["inputs"] = [
        {"id": "enable-strategy-button", "property": "n_clicks", "value": 0},
        {"id": "disable-strategy-button", "property": "n_clicks", "value": 1},
        {"id": "apply-parameters-button", "property": "n_clicks", "value": 0},
    ]
    response = await call(
        client.post, "/_dash-update-component", json=body, headers=csrf_header(client)
    )
    await bus.drain()
    assert response.status_code == 403
    assert control_inbox == []
    assert await audit_rows(store, "configure_strategy") == [("victor", "denied")]


async def test_viewer_cannot_start_a_backtest_through_a_forged_callback(
    client: FlaskClient, gateway: GatewayApp
) -> None:
    await login(client, "victor", VIEWER_PASSWORD)
    body = _callback(
        "backtest-feedback.children",
        "run-backtest-button",
        [
            {"id": "backtest-data", "property": "value", "value": "EURUSD.csv"},
            {"id": "backtest-strategy", "property": "value", "value": "sma_cross"},
            {"id": "backtest-parameters", "property": "value", "value": ""},
            {"id": "backtest-cash", "property": "value", "value": 1000},
        ],
    )
    response = await call(
        client.post, "/_dash-update-component", json=body, headers=csrf_header(client)
    )
    assert response.status_code == 403
    assert gateway.context.backtests.list() == []
