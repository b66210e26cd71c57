"""The console page: header, trading-state badge, the six tabs and their refresh timers."""

from __future__ import annotations

from typing import Any

import dash
from dash import dcc, html

from tai_gateway.auth import Role
from tai_gateway.bridge import LoopBridge
from tai_gateway.console import live, ml, research, risk, strategies, system
from tai_gateway.context import GatewayContext
from tai_gateway.session import SessionUser

TABS = ("live", "risk", "ml", "strategies", "research", "system")


def layout(user: SessionUser | None) -> Any:
    """Return the console for the signed-in user (or a sign-in link)."""
    if user is None:
        return html.Div(
            [html.P("Your session has ended."), html.A("Sign in", href="/login")],
            className="tai-main",
        )
    principal = user.principal
    is_admin = principal.role.allows(Role.ADMIN)
    is_trader = principal.role.allows(Role.TRADER)
    tabs = [
        ("Live", "live", live.layout()),
        ("Risk", "risk", risk.layout(is_admin)),
        ("ML", "ml", ml.layout(is_admin)),
        ("Strategies", "strategies", strategies.layout(is_trader)),
        ("Research", "research", research.layout(is_trader)),
        ("System", "system", system.layout(is_admin)),
    ]
    return html.Div(
        [
            html.Header(
                className="tai-header",
                children=[
                    html.H1("Trading AI Secure"),
                    html.Div(
                        className="tai-row",
                        children=[
                            html.Span("Trading state"),
                            html.Span("…", id="trading-state", className="badge bg-secondary"),
                        ],
                    ),
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
                            dcc.Tab(label=label, value=value, id=f"tab-{value}", children=body)
                            for label, value, body in tabs
                        ],
                    ),
                    dcc.Interval(id="live-refresh", interval=1_000),
                    dcc.Interval(id="slow-refresh", interval=3_000),
                    dcc.Store(id="seen-version"),
                ],
            ),
        ]
    )


def register_callbacks(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    """Register every tab's callbacks."""
    live.register(app, context)
    risk.register(app, context, bridge)
    ml.register(app, context, bridge)
    strategies.register(app, context, bridge)
    research.register(app, context, bridge)
    system.register(app, context, bridge)
