"""The Research tab: backtest runs and their Monte Carlo fans; start a backtest."""

from __future__ import annotations

from typing import Any

import dash
import pandas as pd
from dash import dcc, html
from dash.exceptions import PreventUpdate

from tai_gateway.auth import Role
from tai_gateway.backtests import BacktestBusyError, BacktestRequest, BacktestRequestError
from tai_gateway.bridge import LoopBridge
from tai_gateway.console.controls import authorized, parse_parameters
from tai_gateway.console.views import (
    empty_figure,
    error_alert,
    fan_figure,
    monte_carlo_fan,
    printable,
    table,
    table_or_empty,
)
from tai_gateway.console.widgets import button, card, loading, text_input
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction
from tai_gateway.session import CONSOLE_CHANNEL, require_principal


def layout(is_trader: bool) -> list[Any]:
    children: list[Any] = [html.Div(id="research-error")]
    if is_trader:
        children.append(
            card(
                "Start a backtest (trader)",
                html.Div(
                    className="tai-row",
                    children=[
                        dcc.Dropdown(
                            id="backtest-data",
                            placeholder="Data file",
                            style={"minWidth": "12rem"},
                        ),
                        text_input("backtest-strategy", "strategy", "sma_cross"),
                        text_input("backtest-parameters", "parameters, e.g. fast=10, slow=30"),
                        dcc.Input(
                            id="backtest-cash",
                            type="number",
                            value=100_000,
                            min=1,
                            className="form-control",
                        ),
                        button("Run backtest", "run-backtest-button"),
                    ],
                ),
                html.Div(id="backtest-feedback"),
            )
        )
    else:
        children.append(dcc.Dropdown(id="backtest-data", style={"display": "none"}))
    children += [
        card("Backtest runs", loading("backtests")),
        card(
            "Selected run",
            dcc.Dropdown(id="backtest-run", placeholder="Pick a finished run"),
            html.Div(id="backtest-summary"),
            dcc.Graph(id="fan-graph"),
        ),
        card("Walk-forward, optimisation and Monte Carlo runs", html.Div(id="research-tables")),
    ]
    return children


def register(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    @app.callback(
        dash.Output("backtests", "children"),
        dash.Output("backtest-run", "options"),
        dash.Output("backtest-data", "options"),
        dash.Output("research-tables", "children"),
        dash.Output("research-error", "children"),
        dash.Input("slow-refresh", "n_intervals"),
        dash.Input("tabs", "value"),
    )
    def refresh_research(_ticks: int | None, tab: str | None) -> tuple[Any, ...]:
        require_principal(context, Role.VIEWER)
        if tab != "research":
            raise PreventUpdate
        try:
            runs = context.backtests.list(50)
            tables = context.ledger.research_tables(50)
        except Exception as error:
            return (
                *(dash.no_update,) * 4,
                error_alert(f"Could not read research results ({type(error).__name__})."),
            )
        frame = pd.DataFrame(
            [
                {
                    "run": run.run_id[:8],
                    "state": run.state.value,
                    "strategy": run.request.get("strategy"),
                    "data": run.request.get("data_file"),
                    "by": run.requested_by,
                    "started": run.started_at[:19],
                    "return %": (run.summary or {}).get("return_pct"),
                    "trades": (run.summary or {}).get("trades"),
                    "error": (run.error or "")[:120],
                }
                for run in runs
            ]
        )
        options = [
            {
                "label": f"{run.run_id[:8]} {run.request.get('strategy')} ({run.state})",
                "value": run.run_id,
            }
            for run in runs
            if run.state == "succeeded"
        ]
        research = (
            [
                html.Div([html.H3(name), table(printable(frame_), f"research-{name}")])
                for name, frame_ in tables.items()
            ]
            if tables
            else html.Div(
                "No walk-forward, optimisation or Monte Carlo runs are stored yet.",
                className="tai-empty",
                id="research-empty",
            )
        )
        files = [{"label": name, "value": name} for name in context.backtests.data_files()]
        return (
            table_or_empty(frame, "backtests-table", "No backtest has been run yet"),
            options,
            files,
            research,
            None,
        )

    @app.callback(
        dash.Output("backtest-summary", "children"),
        dash.Output("fan-graph", "figure"),
        dash.Input("backtest-run", "value"),
    )
    def show_run(run_id: str | None) -> tuple[Any, Any]:
        require_principal(context, Role.VIEWER)
        if not run_id:
            return (
                html.Div("Pick a finished run to see its Monte Carlo fan.", className="tai-empty"),
                empty_figure("Monte Carlo fan", "No run selected", height=300),
            )
        report = context.backtests.report(run_id)
        if report is None:
            return error_alert("The run has no report."), dash.no_update
        summary = {
            key: report.get(key)
            for key in ("final_equity", "return_pct", "sharpe", "max_drawdown_pct", "trades")
        }
        pnls = [float(trade.get("pnl", 0.0)) for trade in report.get("trade_list", [])]
        fan = monte_carlo_fan(pnls, float(report.get("initial_cash") or 0.0))
        return (
            table(pd.DataFrame([summary]), "backtest-summary-table"),
            fan_figure(fan, f"Monte Carlo fan: {run_id[:8]} ({len(pnls)} trades resampled)"),
        )

    @app.callback(
        dash.Output("backtest-feedback", "children"),
        dash.Input("run-backtest-button", "n_clicks"),
        dash.State("backtest-data", "value"),
        dash.State("backtest-strategy", "value"),
        dash.State("backtest-parameters", "value"),
        dash.State("backtest-cash", "value"),
        prevent_initial_call=True,
    )
    def run_backtest(
        clicks: int | None,
        data_file: str | None,
        strategy: str | None,
        parameters_text: str | None,
        cash: float | None,
    ) -> Any:
        require_principal(context, Role.VIEWER)
        if not clicks:
            raise PreventUpdate
        principal = authorized(context, bridge, ControlAction.RUN_BACKTEST, data_file or "")
        try:
            request = BacktestRequest(
                strategy=(strategy or "").strip(),
                data_file=data_file or "",
                cash=float(cash or 0),
                parameters=tuple(sorted(parse_parameters(parameters_text).items())),
            )
            run = bridge.run(context.backtests.start(request, principal.username))
        except (BacktestRequestError, ValueError) as error:
            return error_alert(str(error))
        except BacktestBusyError as error:
            return error_alert(str(error))
        bridge.run(
            context.ledger.audit(
                actor=principal.username,
                action="run_backtest",
                subject=run.run_id,
                outcome="started",
                details={"channel": CONSOLE_CHANNEL, "strategy": request.strategy},
            )
        )
        return html.Div(
            f"Backtest {run.run_id[:8]} started; it appears below when it finishes.",
            className="alert alert-success",
        )
