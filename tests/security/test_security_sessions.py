"""Access ends when it should: logout, password change, demotion, removal, revocation.

Issue 16 found an admin's bearer token still halting trading after the account was demoted
and deleted, and a console cookie still working after ``POST /logout``. Every session is now
a server-side row looked up with the user's current record on each request.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import pytest
from flask.testing import FlaskClient

from tai_gateway.console import CSRF_COOKIE, CSRF_HEADER
from tai_gateway.users import UserAdministration
from tests.security.gateway_harness import Gateway
from tests.unit.gateway.gateway_support import ADMIN_PASSWORD, bearer, fast_hasher, token_for

pytestmark = pytest.mark.integration

NEW_PASSWORD = "a-fresh-desk-passphrase-91"


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


def _administration(gateway: Gateway) -> UserAdministration:
    from tai_gateway.auth import PasswordHashing  # noqa: PLC0415

    return UserAdministration(
        gateway.store,
        operator="cli:test",
        clock=gateway.clock,
        hashing=PasswordHashing(fast_hasher()),
    )


async def _halt(gateway: Gateway, token: str) -> int:
    response = await gateway.client.post(
        "/api/control/halt", json={"reason": "probe"}, headers=bearer(token)
    )
    return response.status_code


CHANGES: dict[str, Callable[[UserAdministration], Awaitable[object]]] = {
    "demoted": lambda users: users.set_role("alice", "viewer"),
    "removed": lambda users: users.remove("alice"),
    "password_changed": lambda users: users.set_password("alice", NEW_PASSWORD),
    "sessions_revoked": lambda users: users.revoke_sessions("alice"),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_an_admin_token_stops_working_when_the_account_changes(
    gateway: Gateway, change: str
) -> None:
    # Arrange: an admin token that works
    token = await token_for(gateway.client, "alice", ADMIN_PASSWORD)
    assert await _halt(gateway, token) == 202
    # Act
    await CHANGES[change](_administration(gateway))
    # Assert: the same token can no longer halt (or read anything)
    assert await _halt(gateway, token) == 401
    reads = await gateway.client.get("/api/positions", headers=bearer(token))
    assert reads.status_code == 401


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_console_session_ends_when_the_account_changes(
    gateway: Gateway, change: str
) -> None:
    client = gateway.app.dash_app.server.test_client()
    await _console_login(client, "alice", ADMIN_PASSWORD)
    assert (await asyncio.to_thread(client.get, "/")).status_code == 200
    await CHANGES[change](_administration(gateway))
    page = await asyncio.to_thread(client.get, "/")
    assert page.status_code == 302
    assert page.headers["Location"].endswith("/login")


async def test_a_cookie_kept_after_console_logout_no_longer_works(gateway: Gateway) -> None:
    # Arrange: sign in, keep a copy of the session cookie as an attacker would
    client = gateway.app.dash_app.server.test_client()
    await _console_login(client, "alice", ADMIN_PASSWORD)
    kept = client.get_cookie("tai_session")
    assert kept is not None
    headers = _csrf(client)
    # Act: sign out, then replay the kept cookie
    await asyncio.to_thread(client.post, "/logout", headers=headers)
    replay = gateway.app.dash_app.server.test_client()
    replay.set_cookie("tai_session", kept.value)
    page = await asyncio.to_thread(replay.get, "/")
    # Assert
    assert page.status_code == 302


async def test_console_logout_also_ends_api_tokens(gateway: Gateway) -> None:
    token = await token_for(gateway.client, "alice", ADMIN_PASSWORD)
    client = gateway.app.dash_app.server.test_client()
    await _console_login(client, "alice", ADMIN_PASSWORD)
    await asyncio.to_thread(client.post, "/logout", headers=_csrf(client))
    assert await _halt(gateway, token) == 401


async def test_api_logout_ends_the_token(gateway: Gateway) -> None:
    token = await token_for(gateway.client, "alice", ADMIN_PASSWORD)
    response = await gateway.client.post("/api/logout", headers=bearer(token))
    assert response.status_code == 204
    assert await _halt(gateway, token) == 401


async def test_the_role_comes_from_the_account_not_the_token(gateway: Gateway) -> None:
    # a viewer promoted to admin acts as admin after signing in again; a demoted admin's
    # fresh token is a viewer's
    users = _administration(gateway)
    await users.set_role("alice", "viewer")
    token = await token_for(gateway.client, "alice", ADMIN_PASSWORD)
    assert await _halt(gateway, token) == 403


async def test_a_password_change_lets_only_the_new_password_in(gateway: Gateway) -> None:
    await _administration(gateway).set_password("alice", NEW_PASSWORD)
    old = await gateway.client.post(
        "/api/token", data={"username": "alice", "password": ADMIN_PASSWORD}
    )
    new = await gateway.client.post(
        "/api/token", data={"username": "alice", "password": NEW_PASSWORD}
    )
    assert (old.status_code, new.status_code) == (401, 200)


async def test_account_changes_are_audited(gateway: Gateway) -> None:
    users = _administration(gateway)
    await users.set_role("tom", "viewer")
    await users.remove("tom")
    async with gateway.store.transaction() as unit:
        entries = await unit.audit.list()
    done = {(entry.actor, entry.action, entry.subject) for entry in entries}
    assert ("cli:test", "user_role_changed", "tom") in done
    assert ("cli:test", "user_removed", "tom") in done
