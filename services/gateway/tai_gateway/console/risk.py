"""The Risk tab: limits, VaR/CVaR, breakers, state history, rejections and the kill switch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash
import pandas as pd
from dash import dcc, html
from dash.exceptions import PreventUpdate

from tai_events.orders import OrderRejected
from tai_gateway.auth import Principal, Role
from tai_gateway.bridge import LoopBridge
from tai_gateway.console.controls import register_trading_control
from tai_gateway.console.live import state_of
from tai_gateway.console.refresh import on_tab_refresh
from tai_gateway.console.views import error_alert, format_times, kpi_cards, table, table_or_empty
from tai_gateway.console.widgets import button, card, loading, text_input
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction
from tai_gateway.risk_view import RiskReport, circuit_breakers, risk_report
from tai_gateway.session import require_principal
from tai_telemetry.logging import get_logger

REJECTION_ROWS = 50
REJECTION_COLUMNS = ["decided_at", "order_id", "strategy", "symbol", "rule", "reason"]


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
    """Return the Risk tab's body (the kill-switch controls for admins only)."""
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


def money(value: float | None) -> str:
    """Format a VaR/CVaR amount; ``None`` (too little history) says so."""
    return "n/a (too little history)" if value is None else f"{round(value, 2) + 0.0:,.2f}"


def risk_cards(state: str, report: RiskReport) -> list[tuple[str, str, str]]:
    """Return the Risk tab's KPI cards (id, title, value): state, drawdown, daily P&L, VaR, CVaR."""
    # 97.5 % must not read "98%": show the confidence to the digit risk configured it
    confidence = f"{report.var_confidence * 100:.4g}%"
    cvar_confidence = f"{report.cvar_confidence * 100:.4g}%"
    return [
        ("risk-state", "Trading state", state),
        ("risk-drawdown", "Drawdown", f"{report.drawdown_pct:.2f}%"),
        ("risk-daily", "Daily P&L", f"{report.daily_pnl:+,.2f}"),
        ("risk-var", f"VaR {confidence}", money(report.var)),
        ("risk-cvar", f"CVaR {cvar_confidence}", money(report.cvar)),
    ]


def limits_frame(report: RiskReport) -> pd.DataFrame:
    """Return one row per limit: its value, the limit, the usage and the status."""
    return pd.DataFrame(
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


def rejections_frame(seen: Sequence[OrderRejected], stored: pd.DataFrame) -> pd.DataFrame:
    """Merge rejections just seen on the bus with the stored ones, one row per order, newest first.

    The bus can be ahead of the ledger: a rejection seen on both is shown once, as seen.
    """
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
            for item in seen
        ],
        columns=REJECTION_COLUMNS,
    )
    ledger_rows = stored.rename(columns={"updated_at": "decided_at"})
    ledger_rows = ledger_rows[[column for column in live.columns if column in ledger_rows.columns]]
    rejections = pd.concat(
        [frame for frame in (live, ledger_rows) if not frame.empty] or [live],
        ignore_index=True,
    ).drop_duplicates("order_id", keep="first")
    return format_times(rejections.head(REJECTION_ROWS), ["decided_at"]).fillna("")


def state_history_frame(history: pd.DataFrame) -> pd.DataFrame:
    """Return the trading-state changes with readable times."""
    columns = [c for c in ("changed_at", "state", "reason", "changed_by") if c in history]
    return format_times(history[columns], ["changed_at"])


def register(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    """Register the Risk tab's refresh and its admin controls (halt, resume, flatten)."""
    logger = get_logger("tai_gateway.console")

    @on_tab_refresh(
        app,
        context,
        "risk",
        dash.Output("risk-kpis", "children"),
        dash.Output("limits", "children"),
        dash.Output("breakers", "children"),
        dash.Output("state-history", "children"),
        dash.Output("rejections", "children"),
        dash.Output("risk-error", "children"),
    )
    def refresh_risk(_principal: Principal) -> tuple[Any, ...]:
        limits = context.risk_limits()
        if limits is None:
            waiting = "Waiting for risk to announce its limits and breakers (risk.limits)."
            return (*(dash.no_update,) * 5, error_alert(waiting))
        try:
            report = risk_report(
                context.ledger.equity_curve(),
                context.ledger.positions(),
                limits,
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
        rejections = rejections_frame(context.live.snapshot().rejections, stored)
        return (
            kpi_cards(risk_cards(state_of(context), report)),
            table(limits_frame(report), "limits-table"),
            table_or_empty(
                pd.DataFrame(circuit_breakers(report, limits)), "breakers-table", "No breakers"
            ),
            table_or_empty(
                state_history_frame(history), "state-history-table", "No state changes yet"
            ),
            table_or_empty(rejections, "rejections-table", "No rejected orders"),
            None,
        )

    for action, trigger, feedback, default_reason in (
        (
            ControlAction.HALT,
            dash.Input("halt-button", "n_clicks"),
            "halt-feedback",
            "kill switch pressed in the console",
        ),
        (
            ControlAction.RESUME,
            dash.Input("resume-button", "n_clicks"),
            "resume-feedback",
            "resumed from the console",
        ),
        (
            # flatten asks first (ask_to_flatten); the confirmation's submit sends it
            ControlAction.FLATTEN,
            dash.Input("flatten-confirm", "submit_n_clicks"),
            "flatten-feedback",
            "flatten all from the console",
        ),
    ):
        register_trading_control(
            app,
            context,
            bridge,
            action=action,
            trigger=trigger,
            feedback=feedback,
            default_reason=default_reason,
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
