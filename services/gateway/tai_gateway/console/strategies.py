"""The Strategies tab: each strategy's P&L and parameters; enable, disable, tune."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import dash
import pandas as pd
from dash import html
from dash.exceptions import PreventUpdate

from tai_gateway.auth import Principal
from tai_gateway.bridge import LoopBridge
from tai_gateway.console.controls import control_feedback, parse_parameters
from tai_gateway.console.refresh import on_tab_refresh
from tai_gateway.console.views import error_alert, table_or_empty
from tai_gateway.console.widgets import button, card, loading, text_input
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction
from tai_gateway.session import CONSOLE_CHANNEL
from tai_gateway.strategy_view import StrategySummary, strategy_summaries


def layout(is_trader: bool) -> list[Any]:
    """Return the Strategies tab's body (the configuration controls for traders and admins)."""
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


def strategies_frame(summaries: Sequence[StrategySummary]) -> pd.DataFrame:
    """Return the Strategies table: state, parameters, orders, trades, P&L and win rate."""
    return pd.DataFrame(
        [
            {
                "strategy": summary.strategy,
                "enabled": {None: "unknown", True: "yes", False: "NO"}[summary.enabled],
                "parameters": ", ".join(
                    f"{key}={value}" for key, value in summary.parameters.items()
                ),
                "orders": summary.orders,
                "approved": summary.approved_full,
                "reduced": summary.approved_reduced,
                "rejected": ", ".join(
                    f"{rule} {count}" for rule, count in summary.rejections_by_rule.items()
                )
                or "0",
                "filled": summary.filled,
                "closed trades": summary.trades,
                "net P&L": summary.net_pnl,
                "win rate %": "" if summary.win_rate_pct is None else summary.win_rate_pct,
            }
            for summary in summaries
        ]
    )


def register(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    """Register the Strategies tab's refresh and its trader controls."""

    @on_tab_refresh(app, context, "strategies", dash.Output("strategies", "children"))
    def refresh_strategies(_principal: Principal) -> Any:
        try:
            pnl = context.ledger.strategy_summary()
        except Exception as error:
            return error_alert(f"Could not read the ledger ({type(error).__name__}).")
        summaries = strategy_summaries(pnl, context.live.snapshot().strategies)
        return table_or_empty(
            strategies_frame(summaries),
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
