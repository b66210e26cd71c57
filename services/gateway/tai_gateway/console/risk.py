"""The Risk tab: limits, VaR/CVaR, breakers, state history, rejections and the kill switch."""

from __future__ import annotations

from typing import Any

import dash
import pandas as pd
from dash import dcc, html
from dash.exceptions import PreventUpdate

from tai_gateway.auth import Role
from tai_gateway.bridge import LoopBridge
from tai_gateway.console.controls import control_feedback
from tai_gateway.console.live import state_of
from tai_gateway.console.views import error_alert, format_times, kpi_cards, table, table_or_empty
from tai_gateway.console.widgets import button, card, loading, text_input
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction
from tai_gateway.risk_view import circuit_breakers, risk_report
from tai_gateway.session import CONSOLE_CHANNEL, require_principal
from tai_telemetry.logging import get_logger

REJECTION_ROWS = 50


def _admin_risk_controls() -> Any:
    return card(
        "Trading controls (admin)",
        html.Div(
            className="tai-row",
            children=[
                text_input("control-reason", "Reason (recorded in the audit log)"),
                button("Kill switch: HALT trading", "halt-button", "danger"),
                button("Resume trading", "resume-button", "success"),
                button("Flatten all positions", "flatten-button", "warning"),
            ],
        ),
        dcc.ConfirmDialog(
            id="flatten-confirm",
            message="Close every open position at market now? This cannot be undone.",
        ),
        html.Div(id="halt-feedback"),
        html.Div(id="resume-feedback"),
        html.Div(id="flatten-feedback"),
        card_id="admin-controls",
    )


def layout(is_admin: bool) -> list[Any]:
    children: list[Any] = [html.Div(id="risk-error"), html.Div(id="risk-kpis")]
    if is_admin:
        children.append(_admin_risk_controls())
    children += [
        card("Limits", loading("limits")),
        html.Div(
            className="tai-grid",
            children=[
                card("Circuit breakers", html.Div(id="breakers")),
                card("Trading-state history", html.Div(id="state-history")),
            ],
        ),
        card("Recent rejections", html.Div(id="rejections")),
    ]
    return children


def register(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    logger = get_logger("tai_gateway.console")

    @app.callback(
        dash.Output("risk-kpis", "children"),
        dash.Output("limits", "children"),
        dash.Output("breakers", "children"),
        dash.Output("state-history", "children"),
        dash.Output("rejections", "children"),
        dash.Output("risk-error", "children"),
        dash.Input("slow-refresh", "n_intervals"),
        dash.Input("tabs", "value"),
    )
    def refresh_risk(_ticks: int | None, tab: str | None) -> tuple[Any, ...]:
        require_principal(context, Role.VIEWER)
        if tab != "risk":
            raise PreventUpdate
        try:
            report = risk_report(
                context.ledger.equity_curve(),
                context.ledger.positions(),
                context.risk_limits,
                context.clock.now(),
            )
            history = context.ledger.trading_state_history(20)
            stored = context.ledger.rejections(REJECTION_ROWS)
        except Exception as error:
            logger.exception("console_risk_read_failed")
            return (
                *(dash.no_update,) * 5,
                error_alert(f"Could not read the ledger ({type(error).__name__}); retrying."),
            )
        state = state_of(context)

        def money(value: float | None) -> str:
            return "n/a (too little history)" if value is None else f"{round(value, 2) + 0.0:,.2f}"

        cards = kpi_cards(
            [
                ("risk-state", "Trading state", state),
                ("risk-drawdown", "Drawdown", f"{report.drawdown_pct:.2f}%"),
                ("risk-daily", "Daily P&L", f"{report.daily_pnl:+,.2f}"),
                ("risk-var", f"VaR {report.var_confidence:.0%}", money(report.var)),
                ("risk-cvar", f"CVaR {report.var_confidence:.0%}", money(report.cvar)),
            ]
        )
        limits = pd.DataFrame(
            [
                {
                    "limit": usage.name,
                    "value": f"{usage.value:,.2f} {usage.unit}",
                    "limit value": f"{usage.limit:,.2f} {usage.unit}",
                    "usage": f"{usage.usage_pct:.1f}%",
                    "status": usage.status.value,
                }
                for usage in report.limits
            ]
        )
        live = pd.DataFrame(
            [
                {
                    "decided_at": item.decided_at,
                    "order_id": item.order_id,
                    "strategy": item.strategy,
                    "symbol": item.symbol,
                    "rule": item.rule,
                    "reason": item.reason,
                }
                for item in context.live.snapshot().rejections
            ],
            columns=["decided_at", "order_id", "strategy", "symbol", "rule", "reason"],
        )
        ledger_rows = stored.rename(columns={"updated_at": "decided_at"})
        ledger_rows = ledger_rows[
            [column for column in live.columns if column in ledger_rows.columns]
        ]
        rejections = pd.concat(
            [frame for frame in (live, ledger_rows) if not frame.empty] or [live],
            ignore_index=True,
        ).drop_duplicates("order_id", keep="first")
        rejections = format_times(rejections.head(REJECTION_ROWS), ["decided_at"])
        history_view = format_times(
            history[[c for c in ("changed_at", "state", "reason", "changed_by") if c in history]],
            ["changed_at"],
        )
        return (
            cards,
            table(limits, "limits-table"),
            table_or_empty(pd.DataFrame(circuit_breakers(report)), "breakers-table", "No breakers"),
            table_or_empty(history_view, "state-history-table", "No state changes yet"),
            table_or_empty(rejections.fillna(""), "rejections-table", "No rejected orders"),
            None,
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
        text = (reason or "kill switch pressed in the console")[:2000]
        return control_feedback(
            context,
            bridge,
            ControlAction.HALT,
            lambda user: context.control.request(
                user.principal, ControlAction.HALT, reason=text, channel=CONSOLE_CHANNEL
            ),
        )

    @app.callback(
        dash.Output("resume-feedback", "children"),
        dash.Input("resume-button", "n_clicks"),
        dash.State("control-reason", "value"),
        prevent_initial_call=True,
    )
    def resume_trading(clicks: int | None, reason: str | None) -> Any:
        if not clicks:
            raise PreventUpdate
        text = (reason or "resumed from the console")[:2000]
        return control_feedback(
            context,
            bridge,
            ControlAction.RESUME,
            lambda user: context.control.request(
                user.principal, ControlAction.RESUME, reason=text, channel=CONSOLE_CHANNEL
            ),
        )

    @app.callback(
        dash.Output("flatten-confirm", "displayed"),
        dash.Input("flatten-button", "n_clicks"),
        prevent_initial_call=True,
    )
    def ask_to_flatten(clicks: int | None) -> bool:
        require_principal(context, Role.ADMIN)
        if not clicks:
            raise PreventUpdate
        return True

    @app.callback(
        dash.Output("flatten-feedback", "children"),
        dash.Input("flatten-confirm", "submit_n_clicks"),
        dash.State("control-reason", "value"),
        prevent_initial_call=True,
    )
    def flatten_all(confirmed: int | None, reason: str | None) -> Any:
        if not confirmed:
            raise PreventUpdate
        text = (reason or "flatten all from the console")[:2000]
        return control_feedback(
            context,
            bridge,
            ControlAction.FLATTEN,
            lambda user: context.control.request(
                user.principal, ControlAction.FLATTEN, reason=text, channel=CONSOLE_CHANNEL
            ),
        )
