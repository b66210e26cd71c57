"""Unauthenticated, forged-token and under-privileged API and console calls: all refused.

The gateway runs with an in-memory bus and a SQLite store; control refusals must reach the
append-only audit log and raise an alert (one per caller and action a minute; the rest counted).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from tai_core.clock import FakeClock
from tai_events.alerts import Severity
from tai_gateway.auth import TokenSigner
from tai_gateway.console import CALLBACK_PATH, CSRF_COOKIE, CSRF_HEADER
from tests.security.gateway_harness import Gateway
from tests.unit.gateway.gateway_support import (
    ADMIN_PASSWORD,
    SECRET,
    T0,
    TRADER_PASSWORD,
    VIEWER_PASSWORD,
    bearer,
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
    viewer_token = await token_for(gateway.client, "victor", VIEWER_PASSWORD)
    if forgery == "foreign-secret":
        token = TokenSigner(b"k" * 48, clock, timedelta(hours=1)).issue("alice", "s-1").token
    elif forgery == "role-raised":
        claims = {**_claims(viewer_token), "role": "admin"}
        token = f"{_encode(claims)}.{viewer_token.partition('.')[2]}"
    elif forgery == "unsigned":
        token = f"{_encode({'sub': 'alice', 'sid': 's-1', 'exp': 2**40})}."
    elif forgery == "expired":
        past = FakeClock(T0 - timedelta(days=2))
        token = TokenSigner(SECRET.encode(), past, timedelta(hours=1)).issue("alice", "s-1").token
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


async def test_refused_control_call_raises_an_alert(gateway: Gateway) -> None:
    token = await token_for(gateway.client, "victor", VIEWER_PASSWORD)
    await gateway.client.post("/api/control/halt", json={}, headers=bearer(token))
    await gateway.bus.drain()
    assert [(alert.code, alert.source, alert.severity) for alert in gateway.alerts] == [
        ("control_denied", "gateway", Severity.WARNING)
    ]
    assert gateway.alerts[0].details["caller"] == "victor"
    assert gateway.alerts[0].details["action"] == "halt_trading"
    assert gateway.alerts[0].details["role"] == "viewer"


@pytest.mark.parametrize("path", list(CONTROL))
async def test_unauthenticated_control_is_audited_and_alerted(gateway: Gateway, path: str) -> None:
    body, action = CONTROL[path]
    response = await gateway.client.post(path, json=body)
    await gateway.bus.drain()
    assert response.status_code == 401
    assert await _audit(gateway, action) == [("anonymous", "unauthenticated")]
    assert [(alert.code, alert.details["action"]) for alert in gateway.alerts] == [
        ("control_unauthenticated", action)
    ]


async def test_forged_token_control_is_audited_and_alerted(gateway: Gateway) -> None:
    token = TokenSigner(b"k" * 48, FakeClock(T0), timedelta(hours=1)).issue("alice", "s-1")
    response = await gateway.client.post(
        "/api/control/halt", json={"reason": "forged"}, headers=bearer(token.token)
    )
    await gateway.bus.drain()
    assert response.status_code == 401
    assert gateway.commands == []
    assert await _audit(gateway, "halt_trading") == [("anonymous", "unauthenticated")]
    assert [alert.code for alert in gateway.alerts] == ["control_unauthenticated"]
    assert "signature" in gateway.alerts[0].details["error"]


@pytest.mark.parametrize(
    ("path", "body", "action"),
    [
        ("/api/control/strategies/sma_cross", {"enabled": False}, "configure_strategy"),
        ("/api/control/models/m-1/promote", {}, "promote_model"),
        ("/api/control/models/rollback?symbol=EURUSD&timeframe=1h", {}, "rollback_model"),
    ],
)
async def test_every_control_route_audits_and_alerts_when_unauthenticated(
    gateway: Gateway, path: str, body: dict[str, object], action: str
) -> None:
    response = await gateway.client.post(path, json=body)
    await gateway.bus.drain()
    assert response.status_code == 401
    assert await _audit(gateway, action) == [("anonymous", "unauthenticated")]
    assert [alert.details["action"] for alert in gateway.alerts] == [action]


async def test_a_viewer_changing_a_strategy_is_refused_audited_and_alerted(
    gateway: Gateway,
) -> None:
    token = await token_for(gateway.client, "victor", VIEWER_PASSWORD)
    response = await gateway.client.post(
        "/api/control/strategies/sma_cross",
        json={"parameters": {"fast": 3}},
        headers=bearer(token),
    )
    await gateway.bus.drain()
    assert response.status_code == 403
    assert gateway.commands == []
    assert await _audit(gateway, "configure_strategy") == [("victor", "denied")]
    assert [alert.code for alert in gateway.alerts] == ["control_denied"]


async def test_a_flood_of_refused_calls_raises_one_alert_and_counts_the_rest(
    gateway: Gateway,
) -> None:
    token = await token_for(gateway.client, "victor", VIEWER_PASSWORD)
    for _ in range(20):
        response = await gateway.client.post("/api/control/halt", json={}, headers=bearer(token))
        assert response.status_code == 403
    await gateway.bus.drain()
    assert len(gateway.alerts) == 1
    assert len(await _audit(gateway, "halt_trading")) == 20  # every refusal is still audited
    registry = gateway.app.context.telemetry.registry
    labels = {"code": "control_denied"}
    assert (
        registry.get_sample_value(
            "tai_gateway_refusal_alerts_total", {**labels, "outcome": "raised"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "tai_gateway_refusal_alerts_total", {**labels, "outcome": "suppressed"}
        )
        == 19
    )


# ---- the console: the same refusals through Dash callbacks --------------------------------

HALT_CLICK = {
    "output": "halt-feedback.children",
    "outputs": {"id": "halt-feedback", "property": "children"},
    "inputs": [{"id": "halt-button", "property": "n_clicks", "value": 1}],
    "changedPropIds": ["halt-button.n_clicks"],
    "state": [{"id": "control-reason", "property": "value", "value": "attack"}],
}
REFRESH_TICK = {
    "output": "live-refresh-target.children",
    "outputs": {"id": "live-refresh-target", "property": "children"},
    "inputs": [{"id": "live-refresh", "property": "n_intervals", "value": 7}],
    "changedPropIds": ["live-refresh.n_intervals"],
}


async def _console_login(client: FlaskClient, username: str, password: str) -> None:
    page = await asyncio.to_thread(client.get, "/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match is not None
    form = {"csrf_token": match.group(1), "username": username, "password": password}
    response = await asyncio.to_thread(client.post, "/login", data=form)
    assert response.status_code == 302


def _csrf(client: FlaskClient) -> dict[str, str]:
    cookie = client.get_cookie(CSRF_COOKIE)
    assert cookie is not None
    return {CSRF_HEADER: cookie.value}


async def test_console_control_click_without_a_session_is_audited_and_alerted(
    gateway: Gateway,
) -> None:
    client = gateway.app.dash_app.server.test_client()
    response = await asyncio.to_thread(client.post, CALLBACK_PATH, json=HALT_CLICK)
    await gateway.bus.drain()
    assert response.status_code == 401
    assert gateway.commands == []
    assert await _audit(gateway, "halt_trading") == [("anonymous", "unauthenticated")]
    assert [(alert.code, alert.details["channel"]) for alert in gateway.alerts] == [
        ("control_unauthenticated", "console")
    ]


async def test_an_expired_tab_polling_is_refused_without_an_alert(gateway: Gateway) -> None:
    client = gateway.app.dash_app.server.test_client()
    response = await asyncio.to_thread(client.post, CALLBACK_PATH, json=REFRESH_TICK)
    await gateway.bus.drain()
    assert response.status_code == 401
    assert gateway.alerts == []


async def test_console_control_click_without_the_csrf_token_is_audited_and_alerted(
    gateway: Gateway,
) -> None:
    client = gateway.app.dash_app.server.test_client()
    await _console_login(client, "alice", ADMIN_PASSWORD)
    response = await asyncio.to_thread(client.post, CALLBACK_PATH, json=HALT_CLICK)
    await gateway.bus.drain()
    assert response.status_code == 403
    assert gateway.commands == []
    assert await _audit(gateway, "halt_trading") == [("anonymous", "unauthenticated")]
    assert [alert.details["error"] for alert in gateway.alerts] == ["missing or invalid CSRF token"]


async def test_console_viewer_halt_click_is_refused_audited_and_alerted(
    gateway: Gateway,
) -> None:
    client = gateway.app.dash_app.server.test_client()
    await _console_login(client, "victor", VIEWER_PASSWORD)
    response = await asyncio.to_thread(
        client.post, CALLBACK_PATH, json=HALT_CLICK, headers=_csrf(client)
    )
    await gateway.bus.drain()
    assert response.status_code == 403
    assert gateway.commands == []
    assert await _audit(gateway, "halt_trading") == [("victor", "denied")]
    assert [(alert.code, alert.details["channel"]) for alert in gateway.alerts] == [
        ("control_denied", "console")
    ]


# ---- dead letters and backtests: refusals take the same audit + alert path ----------------

PRIVILEGED = {
    "/api/system/dead-letters/poison-1/requeue": ({}, "dead_letter_requeue", "poison-1"),
    "/api/system/dead-letters/poison-1/discard": ({}, "dead_letter_discard", "poison-1"),
    "/api/backtests": ({"data_file": "EURUSD.csv"}, "run_backtest", "EURUSD.csv"),
}
"""Privileged non-control routes: (body, audit action, audit subject)."""
ADMIN_ONLY_USERS = [("victor", VIEWER_PASSWORD), ("tom", TRADER_PASSWORD)]


async def _audit_subjects(gateway: Gateway, action: str) -> list[tuple[str, str, str]]:
    async with gateway.store.transaction() as unit:
        entries = await unit.audit.list(action=action)
    return [(entry.actor, entry.outcome, entry.subject) for entry in entries]


@pytest.mark.parametrize(
    ("path", "user"),
    [
        *((path, user) for path in list(PRIVILEGED)[:2] for user in ADMIN_ONLY_USERS),
        ("/api/backtests", ("victor", VIEWER_PASSWORD)),
    ],
)
async def test_an_under_privileged_dead_letter_or_backtest_call_is_audited_and_alerted(
    gateway: Gateway, path: str, user: tuple[str, str]
) -> None:
    # Arrange
    name, password = user
    token = await token_for(gateway.client, name, password)
    body, action, subject = PRIVILEGED[path]
    # Act
    response = await gateway.client.post(path, json=body, headers=bearer(token))
    await gateway.bus.drain()
    # Assert
    assert response.status_code == 403
    assert await _audit_subjects(gateway, action) == [(name, "denied", subject)]
    assert [
        (alert.code, alert.details["action"], alert.details["caller"], alert.details["channel"])
        for alert in gateway.alerts
    ] == [("control_denied", action, name, "api")]
    assert gateway.app.context.backtests.list() == []


@pytest.mark.parametrize("path", list(PRIVILEGED))
async def test_an_unauthenticated_dead_letter_or_backtest_call_is_audited_and_alerted(
    gateway: Gateway, path: str
) -> None:
    body, action, _subject = PRIVILEGED[path]
    response = await gateway.client.post(path, json=body)
    await gateway.bus.drain()
    assert response.status_code == 401
    assert await _audit(gateway, action) == [("anonymous", "unauthenticated")]
    assert [(alert.code, alert.details["action"]) for alert in gateway.alerts] == [
        ("control_unauthenticated", action)
    ]


async def test_a_flood_of_refused_dead_letter_calls_raises_one_alert(gateway: Gateway) -> None:
    token = await token_for(gateway.client, "tom", TRADER_PASSWORD)
    for _ in range(5):
        response = await gateway.client.post(
            "/api/system/dead-letters/poison-1/discard", headers=bearer(token)
        )
        assert response.status_code == 403
    await gateway.bus.drain()
    assert len(await _audit(gateway, "dead_letter_discard")) == 5
    assert len(gateway.alerts) == 1


async def test_an_admin_may_still_settle_and_a_trader_start_a_backtest(gateway: Gateway) -> None:
    # the authorisation passes for the right roles: no denial, no alert, the operation runs
    admin = await token_for(gateway.client, "alice", ADMIN_PASSWORD)
    trader = await token_for(gateway.client, "tom", TRADER_PASSWORD)
    missing = await gateway.client.post(
        "/api/system/dead-letters/nothing-here/discard", headers=bearer(admin)
    )
    started = await gateway.client.post(
        "/api/backtests", json={"data_file": "EURUSD.csv"}, headers=bearer(trader)
    )
    await gateway.bus.drain()
    assert missing.status_code == 404  # authorised; there is just no such letter
    assert started.status_code == 422  # authorised; research data is not configured here
    assert await _audit(gateway, "dead_letter_discard") == []
    assert await _audit(gateway, "run_backtest") == []
    assert gateway.alerts == []


def _click(output: str, button: str, state: list[dict[str, object]]) -> dict[str, object]:
    return {
        "output": output,
        "outputs": {"id": output.partition(".")[0], "property": "children"},
        "inputs": [{"id": button, "property": "n_clicks", "value": 1}],
        "changedPropIds": [f"{button}.n_clicks"],
        "state": state,
    }


REQUEUE_CLICK = {
    **_click(
        "dead-letter-feedback.children",
        "requeue-button",
        [{"id": "dead-letter-id", "property": "value", "value": "poison-1"}],
    ),
    "inputs": [
        {"id": "requeue-button", "property": "n_clicks", "value": 1},
        {"id": "discard-button", "property": "n_clicks", "value": None},
    ],
}
BACKTEST_CLICK = _click(
    "backtest-feedback.children",
    "run-backtest-button",
    [
        {"id": "backtest-data", "property": "value", "value": "EURUSD.csv"},
        {"id": "backtest-strategy", "property": "value", "value": "sma_cross"},
        {"id": "backtest-parameters", "property": "value", "value": ""},
        {"id": "backtest-cash", "property": "value", "value": 1000},
    ],
)
CONSOLE_PRIVILEGED = [
    (REQUEUE_CLICK, "dead_letter_requeue", ("tom", TRADER_PASSWORD)),
    (BACKTEST_CLICK, "run_backtest", ("victor", VIEWER_PASSWORD)),
]


@pytest.mark.parametrize(("click", "action", "user"), CONSOLE_PRIVILEGED)
async def test_console_under_privileged_dead_letter_or_backtest_click_is_audited_and_alerted(
    gateway: Gateway, click: dict[str, object], action: str, user: tuple[str, str]
) -> None:
    client = gateway.app.dash_app.server.test_client()
    await _console_login(client, *user)
    response = await asyncio.to_thread(
        client.post, CALLBACK_PATH, json=click, headers=_csrf(client)
    )
    await gateway.bus.drain()
    assert response.status_code == 403
    assert await _audit(gateway, action) == [(user[0], "denied")]
    assert [(alert.code, alert.details["channel"]) for alert in gateway.alerts] == [
        ("control_denied", "console")
    ]
    assert gateway.app.context.backtests.list() == []


@pytest.mark.parametrize(("click", "action", "_user"), CONSOLE_PRIVILEGED)
async def test_console_dead_letter_or_backtest_click_without_a_session_is_audited_and_alerted(
    gateway: Gateway, click: dict[str, object], action: str, _user: tuple[str, str]
) -> None:
    client = gateway.app.dash_app.server.test_client()
    response = await asyncio.to_thread(client.post, CALLBACK_PATH, json=click)
    await gateway.bus.drain()
    assert response.status_code == 401
    assert await _audit(gateway, action) == [("anonymous", "unauthenticated")]
    assert [(alert.code, alert.details["action"]) for alert in gateway.alerts] == [
        ("control_unauthenticated", action)
    ]
