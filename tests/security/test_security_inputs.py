"""Malformed input gets a 4xx that echoes nothing dangerous; refused actions are audited.

Issue 16: NaN/Infinity/1e309 in a JSON body gave 500 (so a refused halt was not audited);
a 64 MiB unauthenticated body was read before the 401; a 5 MB field came back in the 422;
``GET /metrics`` on the API port gave account figures to anyone.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from flask.testing import FlaskClient

from tai_gateway.console import CALLBACK_PATH, CSRF_COOKIE, CSRF_HEADER
from tests.security.gateway_harness import Gateway
from tests.unit.gateway.gateway_support import (
    ADMIN_PASSWORD,
    VIEWER_PASSWORD,
    bearer,
    token_for,
)

pytestmark = pytest.mark.integration

NON_FINITE = {
    "nan": '{"reason": NaN}',
    "infinity": '{"reason": Infinity}',
    "negative_infinity": '{"reason": -Infinity}',
    "overflow": '{"reason": 1e309}',
}
BUSINESS_FIGURES = ("tai_equity", "tai_drawdown", "tai_open_positions", "tai_gross_exposure")


def _no_constants(name: str) -> None:
    raise AssertionError(f"the answer holds {name}")


async def _audit(gateway: Gateway, action: str) -> list[tuple[str, str]]:
    async with gateway.store.transaction() as unit:
        entries = await unit.audit.list(action=action)
    return [(entry.actor, entry.outcome) for entry in entries]


@pytest.mark.parametrize("body", list(NON_FINITE))
async def test_a_non_finite_number_in_a_halt_is_a_422_and_audited(
    gateway: Gateway, body: str
) -> None:
    # Arrange
    token = await token_for(gateway.client, "alice", ADMIN_PASSWORD)
    # Act
    response = await gateway.client.post(
        "/api/control/halt",
        content=NON_FINITE[body],
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    await gateway.bus.drain()
    # Assert: refused, nothing published, the refusal is in the audit log under the caller
    assert response.status_code == 422
    json.loads(response.text, parse_constant=_no_constants)  # valid JSON, no NaN/Infinity
    assert gateway.commands == []
    assert await _audit(gateway, "halt_trading") == [("alice", "invalid_request")]


async def test_a_non_finite_number_without_a_token_is_audited_as_anonymous(
    gateway: Gateway,
) -> None:
    response = await gateway.client.post(
        "/api/control/flatten",
        content='{"symbol": "EURUSD", "reason": NaN}',
        headers={"Content-Type": "application/json"},
    )
    # the body is refused before the credentials are even looked at; the refusal is audited
    assert response.status_code == 422
    assert await _audit(gateway, "flatten_positions") == [("anonymous", "invalid_request")]


async def test_a_non_finite_parameter_never_reaches_a_strategy(gateway: Gateway) -> None:
    token = await token_for(gateway.client, "alice", ADMIN_PASSWORD)
    response = await gateway.client.post(
        "/api/control/strategies/sma_cross",
        content='{"parameters": {"fast": NaN}}',
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    await gateway.bus.drain()
    assert response.status_code == 422
    assert gateway.commands == []


async def test_a_huge_unauthenticated_body_is_refused_before_it_is_read(gateway: Gateway) -> None:
    # Arrange: claim 64 MiB, send far less (a server that waits for it would hang)
    headers = {"Content-Type": "application/json", "Content-Length": str(64 * 1024 * 1024)}
    # Act
    response = await gateway.client.post(
        "/api/control/halt", content=b'{"reason": "x"}', headers=headers
    )
    # Assert
    assert response.status_code == 413


async def test_a_body_over_the_cap_is_refused(gateway: Gateway) -> None:
    token = await token_for(gateway.client, "alice", ADMIN_PASSWORD)
    body = json.dumps({"reason": "x" * (5 * 1024 * 1024)})
    response = await gateway.client.post(
        "/api/control/halt",
        content=body,
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert len(response.content) < 1024


async def test_a_long_field_under_the_cap_is_not_echoed(gateway: Gateway) -> None:
    token = await token_for(gateway.client, "alice", ADMIN_PASSWORD)
    response = await gateway.client.post(
        "/api/control/halt",
        json={"reason": "y" * 50_000},
        headers=bearer(token),
    )
    assert response.status_code == 422
    assert len(response.content) < 2_000
    assert "y" * 200 not in response.text


async def test_metrics_on_the_api_port_need_an_admin(gateway: Gateway) -> None:
    viewer = await token_for(gateway.client, "victor", VIEWER_PASSWORD)
    anonymous = await gateway.client.get("/metrics")
    as_viewer = await gateway.client.get("/metrics", headers=bearer(viewer))
    assert (anonymous.status_code, as_viewer.status_code) == (401, 403)
    assert not any(name in anonymous.text for name in BUSINESS_FIGURES)


def test_every_api_route_parses_json_strictly(gateway: Gateway) -> None:
    # A route added later without the strict route class would let NaN in again.
    from fastapi.routing import APIRoute  # noqa: PLC0415

    from tai_gateway.guards import StrictJsonRoute  # noqa: PLC0415

    routes: list[APIRoute] = []
    pending = list(gateway.app.api.routes)
    while pending:
        route = pending.pop()
        included = getattr(route, "original_router", None)  # an included router's routes
        pending.extend(included.routes if included is not None else [])
        if isinstance(route, APIRoute):
            routes.append(route)
    loose = [route.path for route in routes if not isinstance(route, StrictJsonRoute)]
    assert routes
    assert loose == []


HALT_OUTPUT = {"id": "halt-feedback", "property": "children"}
MALFORMED_CALLBACKS = {
    "array": "[]",
    "string": '"x"',
    "null": "null",
    "empty_object": "{}",
    "unknown_output": '{"output": "nope.children", "outputs": {}, "inputs": []}',
    "inputs_not_a_list": json.dumps(
        {"output": "halt-feedback.children", "outputs": HALT_OUTPUT, "inputs": "x"}
    ),
    "missing_state": json.dumps(
        {
            "output": "halt-feedback.children",
            "outputs": HALT_OUTPUT,
            "inputs": [{"id": "halt-button", "property": "n_clicks", "value": 1}],
            "changedPropIds": ["halt-button.n_clicks"],
        }
    ),
    "nan_click": (
        '{"output": "halt-feedback.children", "outputs": {"id": "halt-feedback", "property":'
        ' "children"}, "inputs": [{"id": "halt-button", "property": "n_clicks", "value": NaN}],'
        ' "changedPropIds": ["halt-button.n_clicks"], "state": [{"id": "control-reason",'
        ' "property": "value", "value": 1e309}]}'
    ),
}


@pytest.mark.parametrize("body", list(MALFORMED_CALLBACKS))
async def test_a_malformed_console_callback_is_a_400(gateway: Gateway, body: str) -> None:
    # Arrange: a signed-in admin with a valid CSRF token
    client = gateway.app.dash_app.server.test_client()
    await _console_login(client, "alice", ADMIN_PASSWORD)
    csrf = client.get_cookie(CSRF_COOKIE)
    assert csrf is not None
    # Act
    response = await asyncio.to_thread(
        client.post,
        CALLBACK_PATH,
        data=MALFORMED_CALLBACKS[body],
        content_type="application/json",
        headers={CSRF_HEADER: csrf.value},
    )
    await gateway.bus.drain()
    # Assert
    assert response.status_code == 400
    assert gateway.commands == []


async def test_a_malformed_halt_click_is_audited(gateway: Gateway) -> None:
    client = gateway.app.dash_app.server.test_client()
    await _console_login(client, "alice", ADMIN_PASSWORD)
    csrf = client.get_cookie(CSRF_COOKIE)
    assert csrf is not None
    await asyncio.to_thread(
        client.post,
        CALLBACK_PATH,
        data=MALFORMED_CALLBACKS["missing_state"],
        content_type="application/json",
        headers={CSRF_HEADER: csrf.value},
    )
    assert await _audit(gateway, "halt_trading") == [("alice", "invalid_request")]


async def _console_login(client: FlaskClient, username: str, password: str) -> None:
    page = await asyncio.to_thread(client.get, "/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match is not None
    form = {"csrf_token": match.group(1), "username": username, "password": password}
    response = await asyncio.to_thread(client.post, "/login", data=form)
    assert response.status_code == 302
