"""The Live tab: trading state, KPIs, candles with signals and fills, positions, orders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import dash
import pandas as pd
from dash import dcc, html
from dash.exceptions import PreventUpdate

from tai_events.risk import TradingState
from tai_gateway.auth import Role
from tai_gateway.console.views import (
    candles_figure,
    candles_frame,
    empty_figure,
    equity_figure,
    error_alert,
    fills_frame,
    format_times,
    kpi_cards,
    kpis,
    open_orders,
    positions_view,
    table,
    table_or_empty,
)
from tai_gateway.console.widgets import card
from tai_gateway.context import GatewayContext
from tai_gateway.session import require_principal
from tai_telemetry.logging import get_logger

FILL_ROWS = 100
BAR_ROWS = 300
STORE_REFRESH = timedelta(seconds=10)
"""Re-read the ledger at least this often even when nothing arrived on the bus."""
FILL_COLUMNS = ["filled_at", "symbol", "side", "quantity", "price", "commission", "strategy"]
STATE_COLORS = {
    TradingState.ACTIVE.value: "success",
    TradingState.REDUCING.value: "warning",
    TradingState.HALTED.value: "danger",
}


def layout() -> list[Any]:
    """Return the Live tab's body."""
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
                card("Open positions", html.Div(id="positions")),
                card("Working orders", html.Div(id="open-orders")),
            ],
        ),
        html.Div(className="tai-card", children=[dcc.Graph(id="equity-graph")]),
        card("Fills", html.Div(id="fills")),
    ]


def state_of(context: GatewayContext) -> str:
    """Return the trading state: the latest seen on the bus, else the stored one."""
    risk = context.live.snapshot().risk
    if risk is not None:
        return risk.state.value
    stored = context.ledger.trading_state()
    # Risk starts ACTIVE and records every transition: no transition means ACTIVE.
    return stored.state if stored is not None else TradingState.ACTIVE.value


def fill_rows(store_fills: pd.DataFrame, live: pd.DataFrame) -> pd.DataFrame:
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


def symbol_shown(symbols: Sequence[str], chosen: str | None) -> str:
    """Return the chosen symbol while it has bars, else the first symbol ("" before any bar)."""
    if chosen in symbols:
        return str(chosen)
    return symbols[0] if symbols else ""


def is_fresh(seen: Mapping[str, Any] | None, version: int, now: datetime) -> bool:
    """Return True when the page already shows ``version`` and was read from the store lately.

    The live state's version changes with every event; the store is re-read at least every
    ``STORE_REFRESH`` because other processes write the ledger too.
    """
    if seen is None or seen.get("version") != version:
        return False
    return now - datetime.fromisoformat(str(seen.get("at"))) < STORE_REFRESH


def register(app: dash.Dash, context: GatewayContext) -> None:
    """Register the Live tab's refresh (also the header's trading-state badge)."""
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
        if not symbol_changed and is_fresh(seen, snapshot.version, now):
            raise PreventUpdate
        try:
            state = state_of(context)
            stored_fills = context.ledger.fills(FILL_ROWS)
            fills = fill_rows(stored_fills, fills_frame(snapshot.fills))
            curve = context.ledger.equity_curve()
            positions = context.ledger.positions()
            symbols = sorted({bar.symbol for bar in snapshot.bars})
            symbol = symbol_shown(symbols, chosen_symbol)
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
