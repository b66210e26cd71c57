"""The Strategies tab: each strategy's P&L and parameters; enable, disable, tune."""

from __future__ import annotations

import re
from typing import Any

import dash
import pandas as pd
from dash import html
from dash.exceptions import PreventUpdate

from tai_gateway.auth import Role
from tai_gateway.bridge import LoopBridge
from tai_gateway.console.controls import control_feedback, parse_parameters
from tai_gateway.console.views import error_alert, table_or_empty
from tai_gateway.console.widgets import button, card, loading, text_input
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction
from tai_gateway.session import CONSOLE_CHANNEL, require_principal


def layout(is_trader: bool) -> list[Any]:
    children: list[Any] = [card("Strategies", loading("strategies"))]
    if is_trader:
        children.append(
            card(
                "Configure a strategy (trader)",
                html.Div(
                    className="tai-row",
                    children=[
                        text_input("strategy-name", "strategy, e.g. sma_cross", "sma_cross"),
                        text_input("strategy-parameters", "parameters, e.g. fast=10, slow=30"),
                        button("Enable", "enable-strategy-button", "success"),
                        button("Disable", "disable-strategy-button", "danger"),
                        button("Apply parameters", "apply-parameters-button"),
                    ],
                ),
                html.Div(id="strategy-feedback"),
            )
        )
    return children


def register(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    @app.callback(
        dash.Output("strategies", "children"),
        dash.Input("slow-refresh", "n_intervals"),
        dash.Input("tabs", "value"),
    )
    def refresh_strategies(_ticks: int | None, tab: str | None) -> Any:
        require_principal(context, Role.VIEWER)
        if tab != "strategies":
            raise PreventUpdate
        try:
            pnl = context.ledger.strategy_pnl()
        except Exception as error:
            return error_alert(f"Could not read the ledger ({type(error).__name__}).")
        live = {update.strategy: update for update in context.live.snapshot().strategies}
        rows = []
        by_name = {row["strategy"]: row for row in pnl.to_dict("records")}
        for name in sorted(set(by_name) | set(live)):
            update = live.get(name)
            stats = by_name.get(name, {})
            rows.append(
                {
                    "strategy": name,
                    "enabled": "unknown" if update is None else ("yes" if update.enabled else "NO"),
                    "parameters": ""
                    if update is None
                    else ", ".join(f"{key}={value}" for key, value in update.parameters.items()),
                    "orders": stats.get("orders", 0),
                    "closed trades": stats.get("trades", 0),
                    "net P&L": stats.get("net_pnl", 0.0),
                    "win rate %": stats.get("win_rate_pct", ""),
                }
            )
        return table_or_empty(
            pd.DataFrame(rows).fillna(""),
            "strategies-table",
            "No strategy has traded or reported yet",
        )

    @app.callback(
        dash.Output("strategy-feedback", "children"),
        dash.Input("enable-strategy-button", "n_clicks"),
        dash.Input("disable-strategy-button", "n_clicks"),
        dash.Input("apply-parameters-button", "n_clicks"),
        dash.State("strategy-name", "value"),
        dash.State("strategy-parameters", "value"),
        prevent_initial_call=True,
    )
    def configure(
        _enable: int | None,
        _disable: int | None,
        _apply: int | None,
        name: str | None,
        parameters_text: str | None,
    ) -> Any:
        trigger = dash.ctx.triggered_id
        if trigger is None:
            raise PreventUpdate
        strategy = (name or "").strip()
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", strategy):
            return error_alert("The strategy name must be lower-case, e.g. sma_cross.")
        try:
            parameters = (
                parse_parameters(parameters_text) if trigger == "apply-parameters-button" else {}
            )
        except ValueError as error:
            return error_alert(f"Parameters: {error}.")
        enabled = {"enable-strategy-button": True, "disable-strategy-button": False}.get(
            str(trigger)
        )
        return control_feedback(
            context,
            bridge,
            ControlAction.CONFIGURE_STRATEGY,
            lambda user: context.control.configure_strategy(
                user.principal,
                strategy,
                enabled=enabled,
                parameters=dict(parameters),
                reason="console",
                channel=CONSOLE_CHANNEL,
            ),
        )
