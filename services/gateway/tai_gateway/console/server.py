"""The Dash trading console: login, session and CSRF guards; the tabs live in console.page.

Security lives on the server: every request past the login page needs a valid session,
every callback POST needs the session's CSRF token in its header, and every callback checks
the session's role itself (hidden buttons are convenience, not enforcement).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import dash
import flask
from markupsafe import escape

from tai_gateway.bridge import LoopBridge
from tai_gateway.callbacks import MalformedCallbackError, parse_callback_request
from tai_gateway.config import GatewaySettings
from tai_gateway.console.page import layout, register_callbacks
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction
from tai_gateway.guards import INVALID_REQUEST
from tai_gateway.login import LoginOutcome
from tai_gateway.session import (
    CONSOLE_CHANNEL,
    SessionUser,
    remember_session,
    resolve_session,
    session_user,
)
from tai_telemetry.logging import get_logger

SESSION_COOKIE = "tai_session"
CSRF_COOKIE = "_csrf_token"
"""Dash's renderer copies this cookie into the X-CSRFToken header of every callback."""
CSRF_HEADER = "X-CSRFToken"
CALLBACK_PATH = "/_dash-update-component"
PUBLIC_PREFIXES = (
    "/login",
    "/assets/",
    "/_dash-component-suites/",
    "/_favicon.ico",
    "/favicon.ico",
)
ASSETS_FOLDER = str(Path(__file__).with_name("assets"))
CONTROL_TRIGGERS = {
    "halt-button.n_clicks": ControlAction.HALT,
    "resume-button.n_clicks": ControlAction.RESUME,
    "flatten-button.n_clicks": ControlAction.FLATTEN,
    "flatten-confirm.submit_n_clicks": ControlAction.FLATTEN,
    "promote-button.n_clicks": ControlAction.PROMOTE_MODEL,
    "rollback-button.n_clicks": ControlAction.ROLLBACK_MODEL,
    "enable-strategy-button.n_clicks": ControlAction.CONFIGURE_STRATEGY,
    "disable-strategy-button.n_clicks": ControlAction.CONFIGURE_STRATEGY,
    "apply-parameters-button.n_clicks": ControlAction.CONFIGURE_STRATEGY,
    "requeue-button.n_clicks": ControlAction.REQUEUE_DEAD_LETTER,
    "discard-button.n_clicks": ControlAction.DISCARD_DEAD_LETTER,
    "run-backtest-button.n_clicks": ControlAction.RUN_BACKTEST,
}
"""Callback inputs (``component.property``) whose change is a control request."""


def requested_control(payload: object) -> ControlAction | None:
    """Return the control action a Dash callback request was triggered for, if any.

    A refresh timer firing after the session expired is not an attack; a click on a control
    button without a session (or without the session's CSRF token) is treated as one.
    """
    if not isinstance(payload, dict):
        return None
    changed = payload.get("changedPropIds")
    if not isinstance(changed, list):
        return None
    for prop in changed:
        action = CONTROL_TRIGGERS.get(prop) if isinstance(prop, str) else None
        if action is not None:
            return action
    return None


def _login_page(csrf: str, message: str = "", *, error: bool = False) -> str:
    notice = ""
    if message:
        kind = "alert-danger" if error else "alert-info"
        notice = f'<div id="login-message" class="alert {kind}">{escape(message)}</div>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Trading AI Secure - sign in</title>
<link rel="stylesheet" href="/assets/console.css"></head>
<body><form class="tai-login" method="post" action="/login" autocomplete="off">
<h1>Trading AI Secure</h1>{notice}
<input type="hidden" name="csrf_token" value="{escape(csrf)}">
<label for="username">Username<input id="username" name="username" required maxlength="64"></label>
<label for="password">Password
<input id="password" name="password" type="password" required maxlength="1024"></label>
<button id="login-submit" class="btn btn-success" type="submit">Sign in</button>
</form></body></html>"""


def create_console(context: GatewayContext, bridge: LoopBridge) -> dash.Dash:
    """Build the Dash console (its Flask server carries the login, session and CSRF checks)."""
    settings = context.settings
    server = flask.Flask("tai_gateway.console")
    server.config.update(
        SECRET_KEY=settings.session_secret.get_secret_value(),
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_minutes),
        MAX_CONTENT_LENGTH=1024 * 1024,
    )

    _register_guards(server, context, bridge)
    _register_auth_routes(server, context, bridge)
    app = dash.Dash(
        "tai_gateway.console",
        server=server,  # type: ignore[arg-type]  # Dash types omit Flask
        title="Trading AI Secure",
        update_title="",
        assets_folder=ASSETS_FOLDER,
        suppress_callback_exceptions=True,
        serve_locally=True,
        csrf_token_name=CSRF_COOKIE,
        csrf_header_name=CSRF_HEADER,
    )
    app.layout = lambda: layout(session_user(context) if flask.has_request_context() else None)
    register_callbacks(app, context, bridge)
    _register_callback_check(server, app, context, bridge)
    return app


def _register_callback_check(
    server: flask.Flask, app: dash.Dash, context: GatewayContext, bridge: LoopBridge
) -> None:
    """Answer a malformed callback request with 400 (audited when it asked for a control)."""
    logger = get_logger("tai_gateway.console")

    @server.before_request
    def well_formed_callback() -> Any:
        # Runs after the session and CSRF guard: only signed-in users get this far.
        if flask.request.path != CALLBACK_PATH or flask.request.method != "POST":
            return None
        try:
            parse_callback_request(flask.request.get_data(cache=True), app.callback_map)
        except MalformedCallbackError as error:
            action = requested_control(flask.request.get_json(silent=True))
            user = session_user(context)
            if action is not None and user is not None:
                context.metrics.control_requests.labels(action.value, INVALID_REQUEST).inc()
                try:
                    bridge.run(
                        context.ledger.audit(
                            actor=user.principal.username,
                            action=action.value,
                            subject="callback",
                            outcome=INVALID_REQUEST,
                            details={"channel": CONSOLE_CHANNEL, "error": str(error)[:200]},
                        )
                    )
                except Exception:
                    logger.exception("control_refusal_not_recorded", action=action.value)
            return flask.jsonify({"error": f"malformed callback request: {error}"}), 400
        return None


def _set_csrf_cookie(response: flask.Response, token: str, settings: GatewaySettings) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=False,  # the renderer must read it to send it back as a header
        samesite="Strict",
        secure=settings.cookie_secure,
        max_age=settings.session_minutes * 60,
    )


def _register_guards(server: flask.Flask, context: GatewayContext, bridge: LoopBridge) -> None:
    logger = get_logger("tai_gateway.console")

    def refuse_control(error: str, status: int) -> Any:
        """Refuse a request; audit and alert when it asked for a control action."""
        refused = flask.jsonify({"error": error}), status
        if flask.request.path != CALLBACK_PATH or flask.request.method != "POST":
            return refused
        action = requested_control(flask.request.get_json(silent=True))
        if action is None:
            return refused
        source = flask.request.remote_addr or "unknown"
        if not context.limiter.allow(f"ip:{source}").allowed:
            context.metrics.rate_limited.inc()
            return flask.jsonify({"error": "rate limit exceeded"}), 429
        context.metrics.control_requests.labels(action.value, "unauthenticated").inc()
        try:
            bridge.run(
                context.control.record_unauthenticated(
                    action, channel=CONSOLE_CHANNEL, source=source, error=error
                )
            )
        except Exception:
            # The refusal stands even when the audit log cannot be written.
            logger.exception("control_refusal_not_recorded", action=action.value)
        return refused

    @server.before_request
    def guard() -> Any:
        path = flask.request.path
        if path.startswith(PUBLIC_PREFIXES):
            return None
        user = resolve_session(context, bridge)
        if user is None:
            if path == "/" and flask.request.method == "GET":
                return flask.redirect("/login")
            return refuse_control("not signed in", 401)
        if flask.request.method != "GET":
            sent = flask.request.headers.get(CSRF_HEADER) or flask.request.form.get("csrf_token")
            if not sent or not hmac.compare_digest(sent, user.csrf):
                logger.warning("csrf_refused", path=path, user=user.principal.username)
                return refuse_control("missing or invalid CSRF token", 403)
        return None

    @server.after_request
    def secure_headers(response: flask.Response) -> flask.Response:
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        user = session_user(context)
        if user is not None and flask.request.cookies.get(CSRF_COOKIE) != user.csrf:
            _set_csrf_cookie(response, user.csrf, context.settings)
        return response


def _sign_in(context: GatewayContext, bridge: LoopBridge, fresh_csrf: str) -> Any:
    """Check the posted credentials; open a server-side session and set the cookie on success."""
    username = flask.request.form.get("username", "").strip()[:64]
    password = flask.request.form.get("password", "")[:1024]
    source = flask.request.remote_addr or "unknown"
    result = bridge.run(
        context.login.login(username, password, channel=CONSOLE_CHANNEL, source=source)
    )
    context.metrics.logins.labels(CONSOLE_CHANNEL, result.outcome.value).inc()
    if result.outcome is not LoginOutcome.SUCCEEDED or result.principal is None:
        flask.session["login_csrf"] = fresh_csrf
        page = _login_page(fresh_csrf, result.message, error=True)
        if result.outcome is LoginOutcome.THROTTLED:
            return page, 429, {"Retry-After": str(result.retry_after_seconds)}
        return page, 401
    opened = bridge.run(
        context.sessions.open(
            result.principal.username,
            channel=CONSOLE_CHANNEL,
            source=source,
            lifetime=timedelta(minutes=context.settings.session_minutes),
        )
    )
    flask.session.clear()  # a new session id on login: no session fixation
    csrf = secrets.token_urlsafe(32)
    remember_session(SessionUser(result.principal, csrf))
    flask.session.permanent = True
    flask.session.update(
        username=result.principal.username, session_id=opened.session_id, csrf=csrf
    )
    return flask.redirect("/")


def _register_auth_routes(server: flask.Flask, context: GatewayContext, bridge: LoopBridge) -> None:
    @server.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if flask.request.method == "GET":
            if resolve_session(context, bridge) is not None:
                return flask.redirect("/")
            # Reuse the form token: a second tab (or a stray redirect) must not void the first.
            existing = flask.session.get("login_csrf")
            token = existing if isinstance(existing, str) else secrets.token_urlsafe(32)
            flask.session.clear()
            flask.session["login_csrf"] = token
            return _login_page(token)
        decision = context.limiter.allow(f"ip:{flask.request.remote_addr or 'unknown'}")
        if not decision.allowed:
            context.metrics.rate_limited.inc()
            retry = str(max(1, round(decision.retry_after_seconds)))
            page = _login_page(str(flask.session.get("login_csrf", "")), "Too many requests.")
            return page, 429, {"Retry-After": retry}
        expected = flask.session.get("login_csrf")
        sent = flask.request.form.get("csrf_token", "")
        fresh = secrets.token_urlsafe(32)
        if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
            flask.session["login_csrf"] = fresh
            page = _login_page(fresh, "The form expired; please sign in again.", error=True)
            return page, 403
        return _sign_in(context, bridge, fresh)

    @server.route("/logout", methods=["POST"])
    def logout() -> Any:
        # The guard already checked the session and its CSRF token. Signing out ends every
        # session of the user (API tokens too): a kept cookie or token must not live on.
        user = session_user(context)
        if user is not None:
            ended = bridge.run(context.sessions.revoke_user(user.principal.username))
            bridge.run(
                context.ledger.audit(
                    actor=user.principal.username,
                    action="logout",
                    subject=CONSOLE_CHANNEL,
                    outcome="sessions_revoked",
                    details={"sessions": ended, "source": flask.request.remote_addr or ""},
                )
            )
        flask.session.clear()
        remember_session(None)
        response = flask.redirect("/login")
        response.delete_cookie(CSRF_COOKIE)
        return response
