"""The Research tab: backtest runs and their Monte Carlo fans; start a backtest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dash
import pandas as pd
from dash import dcc, html
from dash.exceptions import PreventUpdate

from tai_gateway.auth import Principal, Role
from tai_gateway.backtests import (
    BacktestBusyError,
    BacktestRequest,
    BacktestRequestError,
    BacktestRun,
    BacktestState,
)
from tai_gateway.bridge import LoopBridge
from tai_gateway.console.controls import authorized, parse_parameters
from tai_gateway.console.refresh import on_tab_refresh
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

SUMMARY_KEYS = ("final_equity", "return_pct", "sharpe", "max_drawdown_pct", "trades")
"""A run report's headline numbers, in the order shown."""


def layout(is_trader: bool) -> list[Any]:
    """Return the Research tab's body (starting a backtest for traders and admins only)."""
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


def runs_frame(runs: Sequence[BacktestRun]) -> pd.DataFrame:
    """Return the backtest-runs table: request, state, return, trades and any error."""
    return pd.DataFrame(
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


def finished_run_options(runs: Sequence[BacktestRun]) -> list[dict[str, str]]:
    """Return the runs that have a report (succeeded) as dropdown choices."""
    return [
        {
            "label": f"{run.run_id[:8]} {run.request.get('strategy')} ({run.state})",
            "value": run.run_id,
        }
        for run in runs
        if run.state == BacktestState.SUCCEEDED
    ]


def run_summary(report: Mapping[str, Any]) -> pd.DataFrame:
    """Return a run report's headline numbers as a one-row table."""
    return pd.DataFrame([{key: report.get(key) for key in SUMMARY_KEYS}])


def trade_pnls(report: Mapping[str, Any]) -> list[float]:
    """Return the P&L of each trade in a run report (what the Monte Carlo fan resamples)."""
    return [float(trade.get("pnl", 0.0)) for trade in report.get("trade_list", [])]


def register(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    """Register the Research tab's refresh, the run view and the start-a-backtest control."""

    @on_tab_refresh(
        app,
        context,
        "research",
        dash.Output("backtests", "children"),
        dash.Output("backtest-run", "options"),
        dash.Output("backtest-data", "options"),
        dash.Output("research-tables", "children"),
        dash.Output("research-error", "children"),
    )
    def refresh_research(_principal: Principal) -> tuple[Any, ...]:
        try:
            runs = context.backtests.list(50)
            tables = context.ledger.research_tables(50)
        except Exception as error:
            return (
                *(dash.no_update,) * 4,
                error_alert(f"Could not read research results ({type(error).__name__})."),
            )
        research = (
            [
                html.Div([html.H3(name), table(printable(frame), f"research-{name}")])
                for name, frame in tables.items()
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
            table_or_empty(runs_frame(runs), "backtests-table", "No backtest has been run yet"),
            finished_run_options(runs),
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
        pnls = trade_pnls(report)
        fan = monte_carlo_fan(pnls, float(report.get("initial_cash") or 0.0))
        return (
            table(run_summary(report), "backtest-summary-table"),
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
