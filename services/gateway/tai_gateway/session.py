"""The console's session: who is signed in, with which role and CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import flask

from tai_gateway.auth import Principal, Role
from tai_gateway.context import GatewayContext

CONSOLE_CHANNEL = "console"


@dataclass(frozen=True, slots=True)
class SessionUser:
    """The logged-in user of the current request and the session's CSRF token."""

    principal: Principal
    csrf: str


def session_user(context: GatewayContext) -> SessionUser | None:
    """Return the signed-in user of this request, or None when the session is absent/expired."""
    session = flask.session
    username, role, csrf, issued = (
        session.get("username"),
        session.get("role"),
        session.get("csrf"),
        session.get("issued_at"),
    )
    if not (
        isinstance(username, str)
        and isinstance(role, str)
        and isinstance(csrf, str)
        and isinstance(issued, str)
    ):
        return None
    try:
        issued_at = datetime.fromisoformat(issued)
        principal = Principal(username, Role(role))
    except ValueError:
        return None
    lifetime = timedelta(minutes=context.settings.session_minutes)
    if context.clock.now() >= issued_at + lifetime:
        return None
    return SessionUser(principal, csrf)


def require_principal(context: GatewayContext, role: Role = Role.VIEWER) -> Principal:
    """Return the session's principal when it holds ``role``; abort with 401/403 otherwise."""
    user = session_user(context)
    if user is None:
        flask.abort(401)
    if not user.principal.role.allows(role):
        flask.abort(403)
    return user.principal
