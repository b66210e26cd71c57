"""The slow refresh every tab but Live shares: timer or tab switch, role check, then render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dash
from dash.exceptions import PreventUpdate

from tai_gateway.auth import Principal, Role
from tai_gateway.context import GatewayContext
from tai_gateway.session import require_principal

Render = Callable[[Principal], Any]


def on_tab_refresh(
    app: dash.Dash, context: GatewayContext, tab: str, *outputs: dash.Output
) -> Callable[[Render], Render]:
    """Register the decorated ``render(principal)`` to fill ``outputs`` while ``tab`` is shown.

    It runs on the slow timer and when the user switches tabs; the session must hold at least
    the viewer role (401/403 otherwise) and nothing is read while another tab is shown.
    """

    def decorate(render: Render) -> Render:
        @app.callback(
            *outputs,
            dash.Input("slow-refresh", "n_intervals"),
            dash.Input("tabs", "value"),
        )
        def refresh(_ticks: int | None, shown: str | None) -> Any:
            principal = require_principal(context, Role.VIEWER)
            if shown != tab:
                raise PreventUpdate
            return render(principal)

        return render

    return decorate
