"""The console's session: who is signed in, with which (stored) role and CSRF token.

The signed cookie only names a server-side session (``tai_gateway.sessions``); the guard
looks it up once per request, with the user's current role, and remembers the answer for
the rest of the request. A revoked session, a removed user or a changed role therefore take
effect on the console's next request, as on the API.
"""

from __future__ import annotations

from dataclasses import dataclass

import flask

from tai_gateway.auth import Principal, Role
from tai_gateway.bridge import LoopBridge
from tai_gateway.context import GatewayContext

CONSOLE_CHANNEL = "console"
_RESOLVED = "tai_session_user"
"""Attribute of ``flask.g`` holding this request's resolved session user (or None)."""


@dataclass(frozen=True, slots=True)
class SessionUser:
    """The logged-in user of the current request and the session's CSRF token."""

    principal: Principal
    csrf: str


def resolve_session(context: GatewayContext, bridge: LoopBridge) -> SessionUser | None:
    """Look this request's session cookie up in the store (once) and return its user."""
    if hasattr(flask.g, _RESOLVED):
        resolved: SessionUser | None = getattr(flask.g, _RESOLVED)
        return resolved
    session = flask.session
    username, session_id, csrf = (
        session.get("username"),
        session.get("session_id"),
        session.get("csrf"),
    )
    user: SessionUser | None = None
    if isinstance(username, str) and isinstance(session_id, str) and isinstance(csrf, str):
        principal = bridge.run(context.sessions.principal(session_id, username))
        if principal is not None:
            user = SessionUser(principal, csrf)
    setattr(flask.g, _RESOLVED, user)
    return user


def remember_session(user: SessionUser | None) -> None:
    """Set this request's resolved user (after signing in or out)."""
    setattr(flask.g, _RESOLVED, user)


def session_user(context: GatewayContext) -> SessionUser | None:
    """Return the signed-in user the guard resolved for this request, or None."""
    user: SessionUser | None = getattr(flask.g, _RESOLVED, None)
    return user


def require_principal(context: GatewayContext, role: Role = Role.VIEWER) -> Principal:
    """Return the session's principal when it holds ``role``; abort with 401/403 otherwise."""
    user = session_user(context)
    if user is None:
        flask.abort(401)
    if not user.principal.role.allows(role):
        flask.abort(403)
    return user.principal
