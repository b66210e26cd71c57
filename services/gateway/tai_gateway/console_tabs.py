"""The console's tabs (Live, Risk, ML, Strategies, Research, System) and their callbacks.

Every callback checks the session's role on the server; the controls a role may not use are
also left out of its layout, but that is convenience, not enforcement.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import dash
import flask
import pandas as pd
from dash import dcc, html
from dash.exceptions import PreventUpdate

from tai_events.risk import TradingState
from tai_gateway.auth import Principal, Role
from tai_gateway.backtests import BacktestBusyError, BacktestRequest, BacktestRequestError
from tai_gateway.bridge import LoopBridge
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction, ControlDeniedError, ControlReceipt
from tai_gateway.operations import DEFAULT_QUEUES, DeadLetterNotFoundError
from tai_gateway.risk_view import circuit_breakers, risk_report
from tai_gateway.session import CONSOLE_CHANNEL, SessionUser, require_principal, session_user
from tai_gateway.views import (
    candles_figure,
    candles_frame,
    empty_figure,
    equity_figure,
    error_alert,
    fan_figure,
    fills_frame,
    format_times,
    importances_figure,
    kpi_cards,
    kpis,
    models_view,
    monte_carlo_fan,
    open_orders,
    positions_view,
    printable,
    probabilities_figure,
    regime_figure,
    table,
    table_or_empty,
)
from tai_telemetry.logging import get_logger

FILL_ROWS = 100
AUDIT_ROWS = 50
REJECTION_ROWS = 50
BAR_ROWS = 300
DEAD_LETTER_ROWS = 50
STORE_REFRESH = timedelta(seconds=10)
"""Re-read the ledger at least this often even when nothing arrived on the bus."""
FILL_COLUMNS = ["filled_at", "symbol", "side", "quantity", "price", "commission", "strategy"]
STATE_COLORS = {
    TradingState.ACTIVE.value: "success",
    TradingState.REDUCING.value: "warning",
    TradingState.HALTED.value: "danger",
}
PARAMETER_PATTERN = re.compile(r"^\s*([a-z][a-z0-9_]{0,63})\s*=\s*([^,]+?)\s*$")
TABS = ("live", "risk", "ml", "strategies", "research", "system")


def _card(title: str, *children: Any, card_id: str | None = None) -> Any:
    heading = html.H2(title, className="tai-card-title")
    if card_id is None:
        return html.Div(className="tai-card", children=[heading, *children])
    return html.Div(className="tai-card", id=card_id, children=[heading, *children])


def _loading(component_id: str) -> Any:
    return dcc.Loading(html.Div(id=component_id), type="dot", delay_show=400)


def _button(label: str, button_id: str, kind: str = "primary") -> Any:
    return html.Button(label, id=button_id, className=f"btn btn-{kind}", n_clicks=0)


def _text_input(input_id: str, placeholder: str, value: str | None = None) -> Any:
    return dcc.Input(
        id=input_id,
        type="text",
        placeholder=placeholder,
        value=value,
        maxLength=2000,
        className="form-control",
    )


def _live_tab() -> list[Any]:
    return [
        html.Div(id="live-error"),
        html.Div(id="live-kpis"),
        html.Div(
            className="tai-card",
            children=[
                html.Div(
                    className="tai-row",
                    children=[
                        html.Span("Symbol"),
                        dcc.Dropdown(
                            id="candles-symbol",
                            clearable=False,
                            placeholder="newest symbol",
                            style={"minWidth": "10rem"},
                        ),
                    ],
                ),
                dcc.Graph(id="candles-graph", config={"displaylogo": False}),
            ],
        ),
        html.Div(
            className="tai-grid",
            children=[
                _card("Open positions", html.Div(id="positions")),
                _card("Working orders", html.Div(id="open-orders")),
            ],
        ),
        html.Div(className="tai-card", children=[dcc.Graph(id="equity-graph")]),
        _card("Fills", html.Div(id="fills")),
    ]


def _admin_risk_controls() -> Any:
    return _card(
        "Trading controls (admin)",
        html.Div(
            className="tai-row",
            children=[
                _text_input("control-reason", "Reason (recorded in the audit log)"),
                _button("Kill switch: HALT trading", "halt-button", "danger"),
                _button("Resume trading", "resume-button", "success"),
                _button("Flatten all positions", "flatten-button", "warning"),
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


def _risk_tab(is_admin: bool) -> list[Any]:
    children: list[Any] = [html.Div(id="risk-error"), html.Div(id="risk-kpis")]
    if is_admin:
        children.append(_admin_risk_controls())
    children += [
        _card("Limits", _loading("limits")),
        html.Div(
            className="tai-grid",
            children=[
                _card("Circuit breakers", html.Div(id="breakers")),
                _card("Trading-state history", html.Div(id="state-history")),
            ],
        ),
        _card("Recent rejections", html.Div(id="rejections")),
    ]
    return children


def _ml_tab(is_admin: bool) -> list[Any]:
    children: list[Any] = [
        html.Div(id="ml-error"),
        _card("Models", _loading("models")),
    ]
    if is_admin:
        children.append(
            _card(
                "Promote or roll back (admin)",
                html.Div(
                    className="tai-row",
                    children=[
                        dcc.Dropdown(
                            id="model-select",
                            placeholder="Model to promote",
                            style={"minWidth": "18rem"},
                        ),
                        _button("Promote to production", "promote-button", "success"),
                        _button("Roll back its symbol", "rollback-button", "warning"),
                    ],
                ),
                html.Div(id="model-feedback"),
            )
        )
    else:
        # The refresh callback fills the model choices for every role: keep a hidden target.
        children.append(dcc.Dropdown(id="model-select", style={"display": "none"}))
    children += [
        html.Div(
            className="tai-grid",
            children=[
                html.Div(className="tai-card", children=[dcc.Graph(id="probabilities-graph")]),
                html.Div(className="tai-card", children=[dcc.Graph(id="importances-graph")]),
            ],
        ),
        html.Div(className="tai-card", children=[dcc.Graph(id="regime-graph")]),
    ]
    return children


def _strategies_tab(is_trader: bool) -> list[Any]:
    children: list[Any] = [_card("Strategies", _loading("strategies"))]
    if is_trader:
        children.append(
            _card(
                "Configure a strategy (trader)",
                html.Div(
                    className="tai-row",
                    children=[
                        _text_input("strategy-name", "strategy, e.g. sma_cross", "sma_cross"),
                        _text_input("strategy-parameters", "parameters, e.g. fast=10, slow=30"),
                        _button("Enable", "enable-strategy-button", "success"),
                        _button("Disable", "disable-strategy-button", "danger"),
                        _button("Apply parameters", "apply-parameters-button"),
                    ],
                ),
                html.Div(id="strategy-feedback"),
            )
        )
    return children


def _research_tab(is_trader: bool) -> list[Any]:
    children: list[Any] = [html.Div(id="research-error")]
    if is_trader:
        children.append(
            _card(
                "Start a backtest (trader)",
                html.Div(
                    className="tai-row",
                    children=[
                        dcc.Dropdown(
                            id="backtest-data",
                            placeholder="Data file",
                            style={"minWidth": "12rem"},
                        ),
                        _text_input("backtest-strategy", "strategy", "sma_cross"),
                        _text_input("backtest-parameters", "parameters, e.g. fast=10, slow=30"),
                        dcc.Input(
                            id="backtest-cash",
                            type="number",
                            value=100_000,
                            min=1,
                            className="form-control",
                        ),
                        _button("Run backtest", "run-backtest-button"),
                    ],
                ),
                html.Div(id="backtest-feedback"),
            )
        )
    else:
        children.append(dcc.Dropdown(id="backtest-data", style={"display": "none"}))
    children += [
        _card("Backtest runs", _loading("backtests")),
        _card(
            "Selected run",
            dcc.Dropdown(id="backtest-run", placeholder="Pick a finished run"),
            html.Div(id="backtest-summary"),
            dcc.Graph(id="fan-graph"),
        ),
        _card("Walk-forward, optimisation and Monte Carlo runs", html.Div(id="research-tables")),
    ]
    return children


def _system_tab(is_admin: bool) -> list[Any]:
    children: list[Any] = [
        html.Div(
            className="tai-grid",
            children=[
                _card("Readiness", html.Div(id="readiness")),
                _card("Queues", _loading("queues")),
            ],
        ),
    ]
    if is_admin:
        children.append(
            _card(
                "Dead letters (admin)",
                html.Div(
                    className="tai-row",
                    children=[
                        _text_input("dead-letter-id", "message id"),
                        _button("Requeue", "requeue-button", "success"),
                        _button("Discard", "discard-button", "danger"),
                    ],
                ),
                html.Div(id="dead-letter-feedback"),
                html.Div(id="dead-letters"),
            )
        )
    else:
        # The refresh callback writes here for every role; only admins see (and get) letters.
        children.append(html.Div(id="dead-letters", hidden=True))
    children.append(_card("Audit log", html.Div(id="audit")))
    return children


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
        ("Live", "live", _live_tab()),
        ("Risk", "risk", _risk_tab(is_admin)),
        ("ML", "ml", _ml_tab(is_admin)),
        ("Strategies", "strategies", _strategies_tab(is_trader)),
        ("Research", "research", _research_tab(is_trader)),
        ("System", "system", _system_tab(is_admin)),
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


def _state_of(context: GatewayContext) -> str:
    risk = context.live.snapshot().risk
    if risk is not None:
        return risk.state.value
    stored = context.ledger.trading_state()
    # Risk starts ACTIVE and records every transition: no transition means ACTIVE.
    return stored.state if stored is not None else TradingState.ACTIVE.value


def _fill_rows(store_fills: pd.DataFrame, live: pd.DataFrame) -> pd.DataFrame:
    """Merge stored and just-seen fills (the bus can be ahead of the ledger), newest first."""
    frames = [frame for frame in (live, store_fills) if not frame.empty]
    if not frames:
        return pd.DataFrame(columns=FILL_COLUMNS)
    merged = pd.concat(frames, ignore_index=True)
    merged["filled_at"] = pd.to_datetime(merged["filled_at"], utc=True)
    merged = merged.drop_duplicates(subset="fill_id", keep="first")
    merged = merged.sort_values("filled_at", ascending=False).head(FILL_ROWS)
    shown = merged[[column for column in FILL_COLUMNS if column in merged]].copy()
    shown["side"] = shown["side"].astype(str).str.replace("Side.", "", regex=False)
    return format_times(shown, ["filled_at"])


def parse_parameters(text: str | None) -> dict[str, float]:
    """Parse ``name=value, name=value`` into numbers; raise ValueError naming a bad item."""
    parameters: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        match = PARAMETER_PATTERN.match(item)
        if match is None:
            raise ValueError(f"{item.strip()!r} is not name=number")
        try:
            parameters[match.group(1)] = float(match.group(2))
        except ValueError:
            raise ValueError(f"{match.group(2)!r} is not a number") from None
    return parameters


def register_callbacks(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    """Register every tab's callbacks."""
    _register_live(app, context)
    _register_risk(app, context, bridge)
    _register_ml(app, context, bridge)
    _register_strategies(app, context, bridge)
    _register_research(app, context, bridge)
    _register_system(app, context, bridge)


def _register_live(app: dash.Dash, context: GatewayContext) -> None:
    logger = get_logger("tai_gateway.console")

    @app.callback(
        dash.Output("trading-state", "children"),
        dash.Output("trading-state", "className"),
        dash.Output("live-kpis", "children"),
        dash.Output("candles-symbol", "options"),
        dash.Output("candles-graph", "figure"),
        dash.Output("positions", "children"),
        dash.Output("open-orders", "children"),
        dash.Output("equity-graph", "figure"),
        dash.Output("fills", "children"),
        dash.Output("live-error", "children"),
        dash.Output("seen-version", "data"),
        dash.Input("live-refresh", "n_intervals"),
        dash.Input("candles-symbol", "value"),
        dash.State("seen-version", "data"),
    )
    def refresh_live(
        _ticks: int | None, chosen_symbol: str | None, seen: dict[str, Any] | None
    ) -> tuple[Any, ...]:
        require_principal(context, Role.VIEWER)
        snapshot = context.live.snapshot()
        now = context.clock.now()
        symbol_changed = dash.ctx.triggered_id == "candles-symbol"
        if not symbol_changed and seen is not None and seen.get("version") == snapshot.version:
            last = datetime.fromisoformat(str(seen.get("at")))
            if now - last < STORE_REFRESH:
                raise PreventUpdate
        try:
            state = _state_of(context)
            stored_fills = context.ledger.fills(FILL_ROWS)
            fills = _fill_rows(stored_fills, fills_frame(snapshot.fills))
            curve = context.ledger.equity_curve()
            positions = context.ledger.positions()
            symbols = sorted({bar.symbol for bar in snapshot.bars})
            symbol = chosen_symbol if chosen_symbol in symbols else (symbols[0] if symbols else "")
            timeframe = next(
                (bar.timeframe.value for bar in snapshot.bars if bar.symbol == symbol), "1h"
            )
            stored_bars = (
                context.ledger.bars(symbol, timeframe, BAR_ROWS)
                if symbol
                else pd.DataFrame(columns=["opened_at", "open", "high", "low", "close"])
            )
        except Exception as error:
            logger.exception("console_ledger_read_failed")
            message = error_alert(f"Could not read the ledger ({type(error).__name__}); retrying.")
            return (*(dash.no_update,) * 9, message, dash.no_update)
        bars = candles_frame(stored_bars, snapshot.bar_history, symbol)
        all_fills = pd.concat(
            [frame for frame in (fills_frame(snapshot.fills), stored_fills) if not frame.empty]
            or [fills_frame(())],
            ignore_index=True,
        )
        figure = (
            candles_figure(bars, symbol, all_fills, snapshot.signals, snapshot.orders)
            if symbol
            else empty_figure("Market", "No bars yet: waiting for market data", height=380)
        )
        fills_view = (
            html.Div("No fills yet", id="fills-empty", className="tai-empty")
            if fills.empty
            else table(fills, "fills-table")
        )
        return (
            state,
            f"badge bg-{STATE_COLORS.get(state, 'secondary')}",
            kpi_cards(kpis(curve, positions)),
            [{"label": name, "value": name} for name in symbols],
            figure,
            table_or_empty(positions_view(positions), "positions-table", "No open positions"),
            table_or_empty(open_orders(snapshot.orders), "orders-table", "No working orders"),
            equity_figure(curve),
            fills_view,
            None,
            {"version": snapshot.version, "at": now.isoformat()},
        )


def _control_feedback(
    context: GatewayContext,
    bridge: LoopBridge,
    action: ControlAction,
    call: Callable[[SessionUser], Coroutine[Any, Any, ControlReceipt]],
) -> Any:
    """Run a control call for the session user; 403 when the role is refused."""
    logger = get_logger("tai_gateway.console")
    user = session_user(context)
    if user is None:
        flask.abort(401)
    try:
        receipt = bridge.run(call(user))
    except ControlDeniedError:
        context.metrics.control_requests.labels(action.value, "denied").inc()
        logger.warning("control_denied", action=action.value, user=user.principal.username)
        flask.abort(403)
    except LookupError as error:
        return error_alert(str(error))
    except Exception as error:
        context.metrics.control_requests.labels(action.value, "failed").inc()
        logger.exception("control_failed", action=action.value)
        return error_alert(f"Could not send {action.value} ({type(error).__name__}); try again.")
    context.metrics.control_requests.labels(action.value, "published").inc()
    return html.Div(
        f"{receipt.command} sent (message {receipt.message_id}).",
        className="alert alert-success",
    )


DEAD_LETTER_ACTIONS = {
    "requeue-button": ControlAction.REQUEUE_DEAD_LETTER,
    "discard-button": ControlAction.DISCARD_DEAD_LETTER,
}
"""The System tab's dead-letter buttons and the action each asks for."""


def _authorized(
    context: GatewayContext, bridge: LoopBridge, action: ControlAction, subject: str
) -> Principal:
    """Return the session's principal when its role allows ``action``; else 401/403.

    A refusal for the role is audited and raises a (rate-limited) alert, like a control call.
    """
    user = session_user(context)
    if user is None:
        flask.abort(401)
    try:
        bridge.run(
            context.control.authorize(
                user.principal, action, channel=CONSOLE_CHANNEL, subject=subject
            )
        )
    except ControlDeniedError:
        context.metrics.control_requests.labels(action.value, "denied").inc()
        get_logger("tai_gateway.console").warning(
            "control_denied", action=action.value, user=user.principal.username
        )
        flask.abort(403)
    return user.principal


def _register_risk(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
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
        state = _state_of(context)

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
        return _control_feedback(
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
        return _control_feedback(
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
        return _control_feedback(
            context,
            bridge,
            ControlAction.FLATTEN,
            lambda user: context.control.request(
                user.principal, ControlAction.FLATTEN, reason=text, channel=CONSOLE_CHANNEL
            ),
        )


def _register_ml(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    @app.callback(
        dash.Output("models", "children"),
        dash.Output("probabilities-graph", "figure"),
        dash.Output("regime-graph", "figure"),
        dash.Output("importances-graph", "figure"),
        dash.Output("model-select", "options"),
        dash.Output("ml-error", "children"),
        dash.Input("slow-refresh", "n_intervals"),
        dash.Input("tabs", "value"),
    )
    def refresh_ml(_ticks: int | None, tab: str | None) -> tuple[Any, ...]:
        require_principal(context, Role.VIEWER)
        if tab != "ml":
            raise PreventUpdate
        predictions = context.live.snapshot().predictions
        try:
            models = context.ledger.models()
        except Exception as error:
            return (
                *(dash.no_update,) * 5,
                error_alert(f"Could not read the model registry ({type(error).__name__})."),
            )
        if models is None or models.empty:
            message = (
                "No model registry yet: train a model (trading-ai train) to see it here."
                if models is None
                else "No model is registered yet: train one (trading-ai train)."
            )
            models_component: Any = html.Div(message, id="models-empty", className="tai-empty")
            options: list[dict[str, str]] = []
            importances = empty_figure("Feature importances", "No model registered", 300)
        else:
            models_component = table(models_view(models), "models-table")
            options = [
                {"label": f"{row['model_id']} ({row['stage']})", "value": row["model_id"]}
                for row in models.to_dict("records")
            ]
            importances = importances_figure(models)
        return (
            models_component,
            probabilities_figure(predictions),
            regime_figure(predictions),
            importances,
            options,
            None,
        )

    @app.callback(
        dash.Output("model-feedback", "children"),
        dash.Input("promote-button", "n_clicks"),
        dash.Input("rollback-button", "n_clicks"),
        dash.State("model-select", "value"),
        prevent_initial_call=True,
    )
    def change_model(_promote: int | None, _rollback: int | None, model_id: str | None) -> Any:
        trigger = dash.ctx.triggered_id
        if trigger not in {"promote-button", "rollback-button"}:
            raise PreventUpdate
        if not model_id:
            return error_alert("Pick a model first.")
        if trigger == "promote-button":
            return _control_feedback(
                context,
                bridge,
                ControlAction.PROMOTE_MODEL,
                lambda user: context.control.promote_model(
                    user.principal, model_id, reason="promoted in the console", channel="console"
                ),
            )
        models = context.ledger.models()
        chosen = (
            None
            if models is None
            else next(
                (row for row in models.to_dict("records") if row["model_id"] == model_id), None
            )
        )
        if chosen is None:
            return error_alert(f"Model {model_id} is not registered.")
        return _control_feedback(
            context,
            bridge,
            ControlAction.ROLLBACK_MODEL,
            lambda user: context.control.rollback_model(
                user.principal,
                str(chosen["symbol"]),
                str(chosen["timeframe"]),
                reason="rolled back in the console",
                channel=CONSOLE_CHANNEL,
            ),
        )


def _register_strategies(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
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
        return _control_feedback(
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


def _register_research(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
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
        principal = _authorized(context, bridge, ControlAction.RUN_BACKTEST, data_file or "")
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


def _register_system(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    logger = get_logger("tai_gateway.console")

    @app.callback(
        dash.Output("readiness", "children"),
        dash.Output("queues", "children"),
        dash.Output("dead-letters", "children"),
        dash.Output("audit", "children"),
        dash.Input("slow-refresh", "n_intervals"),
        dash.Input("tabs", "value"),
    )
    def refresh_system(_ticks: int | None, tab: str | None) -> tuple[Any, ...]:
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
        try:
            stats = bridge.run(context.operations.queue_stats(DEFAULT_QUEUES))
            queues: Any = table(
                pd.DataFrame(
                    [
                        {
                            "queue": item.queue,
                            "messages": "" if item.messages is None else item.messages,
                            "consumers": "" if item.consumers is None else item.consumers,
                            "note": item.error,
                        }
                        for item in stats
                    ]
                ),
                "queues-table",
            )
        except Exception as error:
            queues = error_alert(f"The broker did not answer ({type(error).__name__}).")
        is_admin = principal.role.allows(Role.ADMIN)
        dead_letters: Any = dash.no_update
        if is_admin:
            try:
                letters = bridge.run(context.operations.dead_letters(DEAD_LETTER_ROWS))
                frame = pd.DataFrame(
                    [
                        {
                            "message_id": letter.message_id,
                            "type": letter.message_type,
                            "routing_key": letter.routing_key,
                            "queue": letter.queue,
                            "reason": letter.reason[:200],
                        }
                        for letter in letters
                    ]
                )
                dead_letters = table_or_empty(frame, "dead-letters-table", "No dead letters")
            except Exception as error:
                dead_letters = error_alert(f"Could not read dead letters ({type(error).__name__}).")
        if not is_admin:
            audit_view: Any = html.Div(
                "The audit log is visible to admins.", className="tai-empty", id="audit-hidden"
            )
        else:
            try:
                audit = context.ledger.audit_log(AUDIT_ROWS)
            except Exception as error:
                logger.exception("console_audit_read_failed")
                audit_view = error_alert(f"Could not read the audit log ({type(error).__name__}).")
            else:
                columns = [
                    column
                    for column in ("occurred_at", "actor", "action", "subject", "outcome")
                    if column in audit
                ]
                audit_view = table_or_empty(
                    format_times(audit[columns], ["occurred_at"]),
                    "audit-table",
                    "No audit entries yet",
                )
        return table(readiness, "readiness-table"), queues, dead_letters, audit_view

    @app.callback(
        dash.Output("dead-letter-feedback", "children"),
        dash.Input("requeue-button", "n_clicks"),
        dash.Input("discard-button", "n_clicks"),
        dash.State("dead-letter-id", "value"),
        prevent_initial_call=True,
    )
    def settle_dead_letter(
        _requeue: int | None, _discard: int | None, message_id: str | None
    ) -> Any:
        require_principal(context, Role.VIEWER)
        action = DEAD_LETTER_ACTIONS.get(str(dash.ctx.triggered_id))
        if action is None:
            raise PreventUpdate
        principal = _authorized(context, bridge, action, (message_id or "").strip()[:128])
        if not message_id:
            return error_alert("Enter the message id of a dead letter.")
        operation = (
            context.operations.requeue
            if action is ControlAction.REQUEUE_DEAD_LETTER
            else context.operations.discard
        )
        try:
            letter = bridge.run(operation(message_id.strip()))
        except DeadLetterNotFoundError:
            return error_alert(f"No dead letter has id {message_id}.")
        except Exception as error:
            return error_alert(f"The broker refused ({type(error).__name__}).")
        bridge.run(
            context.ledger.audit(
                actor=principal.username,
                action=action.value,
                subject=letter.message_id,
                outcome="done",
                details={"channel": CONSOLE_CHANNEL, "reason": letter.reason[:500]},
            )
        )
        return html.Div(
            f"Dead letter {letter.message_id}: {action.value.removeprefix('dead_letter_')}d.",
            className="alert alert-success",
        )
