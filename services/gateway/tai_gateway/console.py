"""The Dash trading console: login, the Live tab, the System tab, admin controls.

Security lives on the server: every request past the login page needs a valid session,
every callback POST needs the session's CSRF token in its header, and every callback checks
the session's role itself (hidden buttons are convenience, not enforcement).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dash
import dash_bootstrap_components as dbc
import flask
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html
from dash.exceptions import PreventUpdate
from markupsafe import escape

from tai_events.orders import FillExecuted
from tai_events.risk import TradingState
from tai_gateway.auth import Principal, Role
from tai_gateway.bridge import LoopBridge
from tai_gateway.config import GatewaySettings
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction, ControlDeniedError
from tai_gateway.login import LoginOutcome
from tai_telemetry.logging import get_logger

CONSOLE_CHANNEL = "console"
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
FILL_ROWS = 100
AUDIT_ROWS = 50
STORE_REFRESH = timedelta(seconds=10)
"""Re-read the ledger at least this often even when nothing arrived on the bus."""
FILL_COLUMNS = ["filled_at", "symbol", "side", "quantity", "price", "commission", "strategy"]
STATE_COLORS = {
    TradingState.ACTIVE.value: "success",
    TradingState.REDUCING.value: "warning",
    TradingState.HALTED.value: "danger",
}
ASSETS_FOLDER = str(Path(__file__).with_name("assets"))


class ConsoleAccessError(Exception):
    """A request has no valid session."""


@dataclass(frozen=True, slots=True)
class SessionUser:
    """The logged-in user of the current request and the session's CSRF token."""

    principal: Principal
    csrf: str


def _session_user(context: GatewayContext) -> SessionUser | None:
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
    user = _session_user(context)
    if user is None:
        flask.abort(401)
    if not user.principal.role.allows(role):
        flask.abort(403)
    return user.principal


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


def _fill_rows(store_fills: pd.DataFrame, live_fills: tuple[FillExecuted, ...]) -> pd.DataFrame:
    """Merge stored and just-seen fills (the bus can be ahead of the ledger), newest first."""
    live = pd.DataFrame(
        [fill.model_dump(mode="python") for fill in live_fills],
        columns=["fill_id", *FILL_COLUMNS],
    )
    frames = [frame for frame in (live, store_fills) if not frame.empty]
    if not frames:
        return pd.DataFrame(columns=FILL_COLUMNS)
    merged = pd.concat(frames, ignore_index=True)
    merged["filled_at"] = pd.to_datetime(merged["filled_at"], utc=True)
    merged = merged.drop_duplicates(subset="fill_id", keep="first")
    merged = merged.sort_values("filled_at", ascending=False).head(FILL_ROWS)
    shown = merged[FILL_COLUMNS].copy()
    shown["filled_at"] = shown["filled_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
    if "side" in shown:
        shown["side"] = shown["side"].astype(str)
    return shown


def _equity_figure(curve: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    if curve.empty:
        figure.add_annotation(
            text="No equity history yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
        figure.update_xaxes(visible=False)
        figure.update_yaxes(visible=False)
    else:
        time_column = "taken_at" if "taken_at" in curve else curve.columns[0]
        figure.add_trace(
            go.Scatter(x=curve[time_column], y=curve["equity"], mode="lines", name="equity")
        )
    figure.update_layout(
        title="Equity", margin={"l": 40, "r": 20, "t": 40, "b": 30}, height=320, showlegend=False
    )
    return figure


def _table(frame: pd.DataFrame, table_id: str) -> Any:
    return dbc.Table.from_dataframe(frame, id=table_id, striped=True, size="sm", className="table")


def _state_of(context: GatewayContext) -> str:
    risk = context.live.snapshot().risk
    if risk is not None:
        return risk.state.value
    stored = context.ledger.trading_state()
    return stored.state if stored is not None else "UNKNOWN"


def _admin_controls() -> Any:
    return html.Div(
        className="tai-card",
        id="admin-controls",
        children=[
            html.H2("Trading controls", style={"fontSize": "1rem"}),
            html.Div(
                className="tai-row",
                children=[
                    dcc.Input(
                        id="control-reason",
                        type="text",
                        placeholder="Reason (recorded in the audit log)",
                        maxLength=2000,
                        className="form-control",
                    ),
                    html.Button(
                        "Kill switch: HALT trading", id="halt-button", className="btn btn-danger"
                    ),
                    html.Button("Resume trading", id="resume-button", className="btn btn-success"),
                ],
            ),
            html.Div(id="halt-feedback"),
            html.Div(id="resume-feedback"),
        ],
    )


def _layout(context: GatewayContext) -> Any:
    user = _session_user(context) if flask.has_request_context() else None
    if user is None:
        return html.Div(
            [html.P("Your session has ended."), html.A("Sign in", href="/login")],
            className="tai-main",
        )
    principal = user.principal
    is_admin = principal.role.allows(Role.ADMIN)
    live_children: list[Any] = [
        html.Div(
            className="tai-card tai-row",
            children=[
                html.Span("Trading state"),
                dbc.Badge("…", id="trading-state", color="secondary", className="badge"),
            ],
        ),
        html.Div(id="live-error"),
    ]
    if is_admin:
        live_children.append(_admin_controls())
    live_children += [
        html.Div(className="tai-card", children=[dcc.Graph(id="equity-graph")]),
        html.Div(
            className="tai-card",
            children=[html.H2("Fills", style={"fontSize": "1rem"}), html.Div(id="fills")],
        ),
    ]
    return html.Div(
        [
            html.Header(
                className="tai-header",
                children=[
                    html.H1("Trading AI Secure"),
                    html.Div(
                        className="tai-user",
                        children=[
                            html.Span(
                                f"{principal.username} ({principal.role.value})", id="whoami"
                            ),
                            html.Form(
                                method="post",
                                action="/logout",
                                children=[
                                    dcc.Input(type="hidden", name="csrf_token", value=user.csrf),
                                    html.Button(
                                        "Sign out",
                                        id="logout-button",
                                        type="submit",
                                        className="btn btn-light",
                                    ),
                                ],
                            ),
                        ],
                    ),
                ],
            ),
            html.Main(
                className="tai-main",
                children=[
                    dcc.Tabs(
                        id="tabs",
                        value="live",
                        children=[
                            dcc.Tab(
                                label="Live", value="live", id="tab-live", children=live_children
                            ),
                            dcc.Tab(
                                label="System",
                                value="system",
                                id="tab-system",
                                children=[
                                    html.Div(
                                        className="tai-card",
                                        children=[
                                            html.H2("Readiness", style={"fontSize": "1rem"}),
                                            html.Div(id="readiness"),
                                        ],
                                    ),
                                    html.Div(
                                        className="tai-card",
                                        children=[
                                            html.H2("Audit log", style={"fontSize": "1rem"}),
                                            html.Div(id="audit"),
                                        ],
                                    ),
                                ],
                            ),
                        ],
                    ),
                    dcc.Interval(id="live-refresh", interval=1_000),
                    dcc.Interval(id="system-refresh", interval=5_000),
                    dcc.Store(id="seen-version"),
                ],
            ),
        ]
    )


def create_console(context: GatewayContext, bridge: LoopBridge) -> dash.Dash:
    """Build the Dash console (its Flask server carries the login, session and CSRF checks)."""
    settings = context.settings
    server = flask.Flask("tai_gateway.console")
    server.config.update(
        SECRET_KEY=settings.session_secret.get_secret_value(),
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_minutes),
        MAX_CONTENT_LENGTH=1024 * 1024,
    )

    _register_guards(server, context)
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
    app.layout = lambda: _layout(context)

    _register_live_callbacks(app, context)
    _register_system_callbacks(app, context, bridge)
    _register_control_callbacks(app, context, bridge)
    return app


def _set_csrf_cookie(response: flask.Response, token: str, settings: GatewaySettings) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        httponly=False,  # the renderer must read it to send it back as a header
        samesite="Strict",
        secure=settings.session_cookie_secure,
        max_age=settings.session_minutes * 60,
    )


def _register_guards(server: flask.Flask, context: GatewayContext) -> None:
    logger = get_logger("tai_gateway.console")

    @server.before_request
    def guard() -> Any:
        path = flask.request.path
        if path.startswith(PUBLIC_PREFIXES):
            return None
        user = _session_user(context)
        if user is None:
            if path == "/" and flask.request.method == "GET":
                return flask.redirect("/login")
            return flask.jsonify({"error": "not signed in"}), 401
        if flask.request.method != "GET":
            sent = flask.request.headers.get(CSRF_HEADER) or flask.request.form.get("csrf_token")
            if not sent or not hmac.compare_digest(sent, user.csrf):
                logger.warning("csrf_refused", path=path, user=user.principal.username)
                return flask.jsonify({"error": "missing or invalid CSRF token"}), 403
        return None

    @server.after_request
    def secure_headers(response: flask.Response) -> flask.Response:
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        user = _session_user(context)
        if user is not None and flask.request.cookies.get(CSRF_COOKIE) != user.csrf:
            _set_csrf_cookie(response, user.csrf, context.settings)
        return response


def _register_auth_routes(server: flask.Flask, context: GatewayContext, bridge: LoopBridge) -> None:
    @server.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if flask.request.method == "GET":
            if _session_user(context) is not None:
                return flask.redirect("/")
            # Reuse the form token: a second tab (or a stray redirect) must not void the first.
            existing = flask.session.get("login_csrf")
            token = existing if isinstance(existing, str) else secrets.token_urlsafe(32)
            flask.session.clear()
            flask.session["login_csrf"] = token
            return _login_page(token)
        expected = flask.session.get("login_csrf")
        sent = flask.request.form.get("csrf_token", "")
        fresh = secrets.token_urlsafe(32)
        if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
            flask.session["login_csrf"] = fresh
            page = _login_page(fresh, "The form expired; please sign in again.", error=True)
            return page, 403
        username = flask.request.form.get("username", "").strip()[:64]
        password = flask.request.form.get("password", "")[:1024]
        result = bridge.run(
            context.login.login(
                username,
                password,
                channel=CONSOLE_CHANNEL,
                source=flask.request.remote_addr or "unknown",
            )
        )
        context.metrics.logins.labels(CONSOLE_CHANNEL, result.outcome.value).inc()
        if result.outcome is not LoginOutcome.SUCCEEDED or result.principal is None:
            flask.session["login_csrf"] = fresh
            return _login_page(fresh, result.message, error=True), 401
        flask.session.clear()  # a new session id on login: no session fixation
        flask.session.permanent = True
        flask.session.update(
            username=result.principal.username,
            role=result.principal.role.value,
            csrf=secrets.token_urlsafe(32),
            issued_at=context.clock.now().isoformat(),
        )
        return flask.redirect("/")

    @server.route("/logout", methods=["POST"])
    def logout() -> Any:
        flask.session.clear()
        response = flask.redirect("/login")
        response.delete_cookie(CSRF_COOKIE)
        return response


def _register_live_callbacks(app: dash.Dash, context: GatewayContext) -> None:
    logger = get_logger("tai_gateway.console")

    @app.callback(
        dash.Output("trading-state", "children"),
        dash.Output("trading-state", "color"),
        dash.Output("equity-graph", "figure"),
        dash.Output("fills", "children"),
        dash.Output("live-error", "children"),
        dash.Output("seen-version", "data"),
        dash.Input("live-refresh", "n_intervals"),
        dash.State("seen-version", "data"),
    )
    def refresh_live(_ticks: int | None, seen: dict[str, Any] | None) -> tuple[Any, ...]:
        require_principal(context, Role.VIEWER)
        snapshot = context.live.snapshot()
        now = context.clock.now()
        if seen is not None and seen.get("version") == snapshot.version:
            last = datetime.fromisoformat(str(seen.get("at")))
            if now - last < STORE_REFRESH:
                raise PreventUpdate
        try:
            state = _state_of(context)
            fills = _fill_rows(context.ledger.fills(FILL_ROWS), snapshot.fills)
            curve = context.ledger.equity_curve()
        except Exception as error:
            logger.exception("console_ledger_read_failed")
            message = dbc.Alert(
                f"Could not read the ledger ({type(error).__name__}); retrying.",
                color="danger",
                className="alert alert-danger",
            )
            return (
                dash.no_update,
                dash.no_update,
                dash.no_update,
                dash.no_update,
                message,
                dash.no_update,
            )
        fills_view: Any = (
            html.Div("No fills yet", id="fills-empty", className="tai-empty")
            if fills.empty
            else _table(fills, "fills-table")
        )
        return (
            state,
            STATE_COLORS.get(state, "secondary"),
            _equity_figure(curve),
            fills_view,
            None,
            {"version": snapshot.version, "at": now.isoformat()},
        )


def _register_system_callbacks(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    logger = get_logger("tai_gateway.console")

    @app.callback(
        dash.Output("readiness", "children"),
        dash.Output("audit", "children"),
        dash.Input("system-refresh", "n_intervals"),
        dash.Input("tabs", "value"),
    )
    def refresh_system(_ticks: int | None, tab: str | None) -> tuple[Any, Any]:
        principal = require_principal(context, Role.VIEWER)
        if tab != "system":
            raise PreventUpdate
        try:
            checks = bridge.run(context.readiness())
        except Exception as error:
            checks = {"gateway": False}
            logger.warning("readiness_check_failed", error=type(error).__name__)
        readiness = pd.DataFrame(
            [
                {"check": name, "status": "ready" if ok else "NOT READY"}
                for name, ok in checks.items()
            ]
        )
        readiness_view = _table(readiness, "readiness-table")
        if not principal.role.allows(Role.ADMIN):
            audit_view: Any = html.Div(
                "The audit log is visible to admins.", className="tai-empty", id="audit-hidden"
            )
        else:
            try:
                audit = context.ledger.audit_log(AUDIT_ROWS)
            except Exception as error:
                logger.exception("console_audit_read_failed")
                audit_view = dbc.Alert(
                    f"Could not read the audit log ({type(error).__name__}).",
                    color="danger",
                    className="alert alert-danger",
                )
            else:
                audit_view = (
                    html.Div("No audit entries yet", className="tai-empty", id="audit-empty")
                    if audit.empty
                    else _table(_audit_view(audit), "audit-table")
                )
        return readiness_view, audit_view


def _register_control_callbacks(
    app: dash.Dash, context: GatewayContext, bridge: LoopBridge
) -> None:
    logger = get_logger("tai_gateway.console")

    def run_control(action: ControlAction, reason: str | None) -> Any:
        user = _session_user(context)
        if user is None:
            flask.abort(401)
        try:
            receipt = bridge.run(
                context.control.request(
                    user.principal, action, reason=(reason or "")[:2000], channel=CONSOLE_CHANNEL
                )
            )
        except ControlDeniedError:
            context.metrics.control_requests.labels(action.value, "denied").inc()
            logger.warning("control_denied", action=action.value, user=user.principal.username)
            flask.abort(403)
        except Exception as error:
            context.metrics.control_requests.labels(action.value, "failed").inc()
            logger.exception("control_failed", action=action.value)
            return dbc.Alert(
                f"Could not send {action.value} ({type(error).__name__}); try again.",
                color="danger",
                className="alert alert-danger",
            )
        context.metrics.control_requests.labels(action.value, "published").inc()
        return dbc.Alert(
            f"{receipt.command} sent (message {receipt.message_id}); waiting for risk.",
            color="success",
            className="alert alert-success",
        )

    @app.callback(
        dash.Output("halt-feedback", "children"),
        dash.Input("halt-button", "n_clicks"),
        dash.State("control-reason", "value"),
        prevent_initial_call=True,
    )
    def halt_trading(clicks: int | None, reason: str | None) -> Any:
        if not clicks:
            raise PreventUpdate
        return run_control(ControlAction.HALT, reason or "kill switch pressed in the console")

    @app.callback(
        dash.Output("resume-feedback", "children"),
        dash.Input("resume-button", "n_clicks"),
        dash.State("control-reason", "value"),
        prevent_initial_call=True,
    )
    def resume_trading(clicks: int | None, reason: str | None) -> Any:
        if not clicks:
            raise PreventUpdate
        return run_control(ControlAction.RESUME, reason or "resumed from the console")


def _audit_view(audit: pd.DataFrame) -> pd.DataFrame:
    columns = [
        column
        for column in ("occurred_at", "actor", "action", "subject", "outcome")
        if column in audit
    ]
    shown = audit[columns].copy()
    if "occurred_at" in shown:
        times = pd.to_datetime(shown["occurred_at"], utc=True)
        shown["occurred_at"] = times.dt.strftime("%Y-%m-%d %H:%M:%S")
    return shown
