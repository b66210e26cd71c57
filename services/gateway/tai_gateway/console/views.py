"""Pure builders of the console's figures and tables (no I/O: frames and events in, views out)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import html

from tai_events.market import BarClosed
from tai_events.ml import PredictionMade
from tai_events.orders import FillExecuted, OrderState, OrderStatusChanged, SignalGenerated

FIGURE_MARGIN = {"l": 40, "r": 20, "t": 40, "b": 30}
TERMINAL_ORDER_STATES = {
    OrderState.FILLED,
    OrderState.CANCELLED,
    OrderState.REJECTED,
    OrderState.EXPIRED,
}
FAN_PERCENTILES = (5, 25, 50, 75, 95)
MONTE_CARLO_PATHS = 1_000


def empty_figure(title: str, message: str, height: int = 320) -> go.Figure:
    """Return a figure that says why it is empty."""
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(title=title, margin=FIGURE_MARGIN, height=height)
    return figure


def table(frame: pd.DataFrame, table_id: str) -> Any:
    """Return a compact striped table of a frame."""
    return dbc.Table.from_dataframe(frame, id=table_id, striped=True, size="sm", className="table")


def printable(frame: pd.DataFrame, max_length: int = 200) -> pd.DataFrame:
    """Return a copy whose dict and list cells are compact JSON text (tables show text only)."""

    def text(value: Any) -> Any:
        if isinstance(value, dict | list):
            return json.dumps(value, default=str, separators=(", ", ": "))[:max_length]
        return value

    return frame.map(text) if not frame.empty else frame


def table_or_empty(frame: pd.DataFrame, table_id: str, empty_message: str) -> Any:
    """Return the table, or an empty-state line with id ``<table_id>-empty``."""
    if frame.empty:
        return html.Div(empty_message, id=f"{table_id}-empty", className="tai-empty")
    return table(frame, table_id)


def error_alert(message: str) -> Any:
    """Return a red alert."""
    return dbc.Alert(message, color="danger", className="alert alert-danger")


def format_times(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Return a copy with the given timestamp columns as readable UTC strings."""
    shown = frame.copy()
    for column in columns:
        if column in shown:
            times = pd.to_datetime(shown[column], utc=True)
            shown[column] = times.dt.strftime("%Y-%m-%d %H:%M:%S")
    return shown


def candles_frame(stored: pd.DataFrame, live: Sequence[BarClosed], symbol: str) -> pd.DataFrame:
    """Merge stored bars and bars seen on the bus of one symbol, oldest first."""
    seen = pd.DataFrame(
        [
            {
                "opened_at": bar.opened_at,
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "close": bar.close,
            }
            for bar in live
            if bar.symbol == symbol
        ],
        columns=["opened_at", "open", "high", "low", "close"],
    )
    frames = [
        frame
        for frame in (stored[["opened_at", "open", "high", "low", "close"]], seen)
        if not frame.empty
    ]
    if not frames:
        return seen
    merged = pd.concat(frames, ignore_index=True)
    merged["opened_at"] = pd.to_datetime(merged["opened_at"], utc=True)
    return merged.drop_duplicates("opened_at", keep="last").sort_values("opened_at")


def candles_figure(
    bars: pd.DataFrame,
    symbol: str,
    fills: pd.DataFrame,
    signals: Sequence[SignalGenerated],
    orders: Sequence[OrderStatusChanged],
) -> go.Figure:
    """Return candles of ``symbol`` with signals, orders and fills marked."""
    if bars.empty:
        return empty_figure(f"{symbol or 'Market'}", "No bars yet: waiting for market data")
    figure = go.Figure(
        go.Candlestick(
            x=bars["opened_at"],
            open=bars["open"],
            high=bars["high"],
            low=bars["low"],
            close=bars["close"],
            name=symbol,
        )
    )
    start = bars["opened_at"].min()
    symbol_fills = fills[fills["symbol"] == symbol] if not fills.empty else fills
    if not symbol_fills.empty:
        times = pd.to_datetime(symbol_fills["filled_at"], utc=True)
        keep = (times >= start) & (times <= _chart_end(bars))
        buys = symbol_fills[keep & (symbol_fills["side"].astype(str) == "BUY")]
        sells = symbol_fills[keep & (symbol_fills["side"].astype(str) == "SELL")]
        for frame, name, marker in (
            (buys, "buy fill", {"symbol": "triangle-up", "color": "#1e8e3e", "size": 11}),
            (sells, "sell fill", {"symbol": "triangle-down", "color": "#c5221f", "size": 11}),
        ):
            if not frame.empty:
                figure.add_trace(
                    go.Scatter(
                        x=pd.to_datetime(frame["filled_at"], utc=True),
                        y=frame["price"],
                        mode="markers",
                        name=name,
                        marker=marker,
                    )
                )
    end = _chart_end(bars)
    marked = [
        signal
        for signal in signals
        if signal.symbol == symbol and start <= pd.Timestamp(signal.bar_closed_at) <= end
    ]
    if marked:
        signal_times = [pd.Timestamp(signal.bar_closed_at) for signal in marked]
        figure.add_trace(
            go.Scatter(
                x=signal_times,
                y=_prices_at(bars, signal_times),
                mode="markers",
                name="signal",
                text=[f"{signal.direction.value}: {signal.reason}" for signal in marked],
                marker={"symbol": "diamond-open", "color": "#174ea6", "size": 10},
            )
        )
    # Markers outside the charted bars would stretch the time axis (a replay's orders carry
    # wall-clock times while its bars are historical): show only those inside it.
    working = [
        order
        for order in orders
        if order.symbol == symbol and start <= pd.Timestamp(order.changed_at) <= end
    ]
    if working:
        order_times = [pd.Timestamp(order.changed_at) for order in working]
        figure.add_trace(
            go.Scatter(
                x=order_times,
                y=_prices_at(bars, order_times),
                mode="markers",
                name="order",
                text=[f"{order.order_id}: {order.state.value}" for order in working],
                marker={"symbol": "circle-open", "color": "#6b7280", "size": 8},
            )
        )
    figure.update_layout(
        title=f"{symbol}: candles, signals, orders and fills",
        margin=FIGURE_MARGIN,
        height=380,
        xaxis_rangeslider_visible=False,
        legend={"orientation": "h", "y": -0.15},
    )
    return figure


def _chart_end(bars: pd.DataFrame) -> pd.Timestamp:
    """Return when the last charted bar closes (its open plus the typical bar spacing)."""
    opened = pd.to_datetime(bars["opened_at"], utc=True)
    spacing = opened.diff().median() if len(opened) > 1 else pd.Timedelta(0)
    return pd.Timestamp(opened.max()) + (spacing if pd.notna(spacing) else pd.Timedelta(0))


def _prices_at(bars: pd.DataFrame, times: Sequence[pd.Timestamp]) -> list[float]:
    """Return the close of the last bar that opened at or before each time (NaN before)."""
    opened = (
        pd.to_datetime(bars["opened_at"], utc=True).dt.tz_localize(None).to_numpy("datetime64[ns]")
    )
    closes = bars["close"].to_numpy(dtype="float64")
    prices = []
    for time in times:
        moment = pd.Timestamp(time).tz_convert("UTC").tz_localize(None).to_datetime64()
        index = int(np.searchsorted(opened, moment, side="right")) - 1
        prices.append(float(closes[index]) if index >= 0 else float("nan"))
    return prices


def equity_figure(curve: pd.DataFrame) -> go.Figure:
    """Return the equity curve (or an empty state)."""
    if curve.empty:
        return empty_figure("Equity", "No equity history yet")
    time_column = "taken_at" if "taken_at" in curve else curve.columns[0]
    figure = go.Figure(
        go.Scatter(x=curve[time_column], y=curve["equity"], mode="lines", name="equity")
    )
    figure.update_layout(title="Equity", margin=FIGURE_MARGIN, height=300, showlegend=False)
    return figure


def open_orders(orders: Sequence[OrderStatusChanged]) -> pd.DataFrame:
    """Return the orders that are still working."""
    rows = [
        {
            "order_id": order.order_id,
            "symbol": order.symbol,
            "state": order.state.value,
            "filled": order.filled_quantity,
            "changed_at": order.changed_at,
        }
        for order in orders
        if order.state not in TERMINAL_ORDER_STATES
    ]
    frame = pd.DataFrame(rows, columns=["order_id", "symbol", "state", "filled", "changed_at"])
    return format_times(frame, ["changed_at"])


def positions_view(positions: pd.DataFrame) -> pd.DataFrame:
    """Return open positions with unrealised P&L."""
    columns = [
        "symbol",
        "quantity",
        "average_price",
        "last_price",
        "unrealized_pnl",
        "realized_pnl",
    ]
    if positions.empty:
        return pd.DataFrame(columns=columns)
    shown = positions[positions["quantity"].abs() > 1e-12].copy()
    shown["unrealized_pnl"] = (
        (shown["last_price"] - shown["average_price"]) * shown["quantity"]
    ).round(2)
    shown["realized_pnl"] = shown["realized_pnl"].round(2)
    return shown[columns]


def kpis(curve: pd.DataFrame, positions: pd.DataFrame) -> list[tuple[str, str, str]]:
    """Return (id, label, value) of the Live tab's headline numbers."""
    equity = f"{curve['equity'].iloc[-1]:,.2f}" if not curve.empty else "n/a"
    change = (
        f"{curve['equity'].iloc[-1] - curve['equity'].iloc[0]:+,.2f}" if len(curve) > 1 else "n/a"
    )
    view = positions_view(positions)
    unrealized = f"{view['unrealized_pnl'].sum():+,.2f}" if not view.empty else "+0.00"
    realized = f"{positions['realized_pnl'].sum():+,.2f}" if not positions.empty else "+0.00"
    return [
        ("kpi-equity", "Equity", equity),
        ("kpi-pnl", "P&L since start", change),
        ("kpi-unrealized", "Unrealised P&L", unrealized),
        ("kpi-realized", "Realised P&L", realized),
        ("kpi-positions", "Open positions", str(len(view))),
    ]


def kpi_cards(items: Sequence[tuple[str, str, str]]) -> Any:
    """Return a row of small number cards."""
    return html.Div(
        className="tai-kpis",
        children=[
            html.Div(
                className="tai-kpi",
                children=[html.Div(label, className="tai-kpi-label"), html.Div(value, id=key)],
            )
            for key, label, value in items
        ],
    )


def probabilities_figure(predictions: Sequence[PredictionMade]) -> go.Figure:
    """Return the latest class probabilities of each symbol."""
    latest: dict[str, PredictionMade] = {}
    for prediction in predictions:  # newest first: keep the first of each symbol
        latest.setdefault(prediction.symbol, prediction)
    if not latest:
        return empty_figure("Latest probabilities", "No predictions yet", height=280)
    figure = go.Figure()
    classes = sorted({name.value for item in latest.values() for name in item.probabilities})
    for symbol, prediction in sorted(latest.items()):
        values = {name.value: value for name, value in prediction.probabilities.items()}
        figure.add_trace(go.Bar(name=symbol, x=classes, y=[values.get(name) for name in classes]))
    figure.update_layout(
        title="Latest probabilities", margin=FIGURE_MARGIN, height=280, barmode="group"
    )
    figure.update_yaxes(range=[0, 1])
    return figure


def regime_figure(predictions: Sequence[PredictionMade]) -> go.Figure:
    """Return the regime of each prediction over time."""
    points = [item for item in predictions if item.regime is not None]
    if not points:
        return empty_figure("Regime timeline", "No regime predictions yet", height=240)
    points = sorted(points, key=lambda item: item.bar_closed_at)
    figure = go.Figure()
    for symbol in sorted({item.symbol for item in points}):
        mine = [item for item in points if item.symbol == symbol]
        figure.add_trace(
            go.Scatter(
                x=[item.bar_closed_at for item in mine],
                y=[item.regime for item in mine],
                mode="lines+markers",
                line={"shape": "hv"},
                name=symbol,
            )
        )
    figure.update_layout(title="Regime timeline", margin=FIGURE_MARGIN, height=240)
    return figure


def importances_figure(models: pd.DataFrame) -> go.Figure:
    """Return the feature importances of the production model (else the newest one)."""
    if models.empty:
        return empty_figure("Feature importances", "No model registered", height=300)
    production = models[models["stage"] == "production"]
    chosen = (production if not production.empty else models).iloc[0]
    importances = chosen.get("importances") or {}
    if not isinstance(importances, dict) or not importances:
        return empty_figure("Feature importances", "The model stored no importances", 300)
    ranked = sorted(importances.items(), key=lambda item: item[1])[-20:]
    figure = go.Figure(
        go.Bar(x=[value for _, value in ranked], y=[name for name, _ in ranked], orientation="h")
    )
    figure.update_layout(
        title=f"Feature importances: {chosen['model_id']}", margin=FIGURE_MARGIN, height=300
    )
    return figure


def models_view(models: pd.DataFrame) -> pd.DataFrame:
    """Return the registry as a table: identity, stage, headline metrics and drift."""
    rows = []
    for model in models.to_dict("records"):
        metrics_value = model.get("metrics")
        extras_value = model.get("extras")
        metrics: dict[str, Any] = metrics_value if isinstance(metrics_value, dict) else {}
        extras: dict[str, Any] = extras_value if isinstance(extras_value, dict) else {}
        headline = ", ".join(
            f"{name}={value:.3g}" if isinstance(value, int | float) else f"{name}={value}"
            for name, value in list(metrics.items())[:4]
        )
        drift = extras.get("drift", "")
        if model.get("needs_retraining"):
            drift = f"retrain: {model.get('retraining_reason') or 'flagged'}"
        rows.append(
            {
                "model_id": model["model_id"],
                "algorithm": model.get("algorithm", ""),
                "symbol": model.get("symbol", ""),
                "timeframe": model.get("timeframe", ""),
                "stage": model.get("stage", ""),
                "metrics": headline,
                "drift": str(drift) if drift else "none detected",
                "created_at": model.get("created_at"),
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=[
            "model_id",
            "algorithm",
            "symbol",
            "timeframe",
            "stage",
            "metrics",
            "drift",
            "created_at",
        ],
    )
    return format_times(frame, ["created_at"])


def monte_carlo_fan(
    trade_pnls: Sequence[float],
    initial_cash: float,
    *,
    paths: int = MONTE_CARLO_PATHS,
    seed: int = 7,
) -> pd.DataFrame:
    """Bootstrap trade P&Ls into equity paths; return percentiles of equity per trade number."""
    pnls = np.asarray(list(trade_pnls), dtype="float64")
    if pnls.size == 0:
        return pd.DataFrame(columns=["trade", *[f"p{level}" for level in FAN_PERCENTILES]])
    generator = np.random.default_rng(seed)
    draws = generator.choice(pnls, size=(paths, pnls.size), replace=True)
    equity = initial_cash + np.cumsum(draws, axis=1)
    equity = np.concatenate([np.full((paths, 1), initial_cash), equity], axis=1)
    percentiles = np.percentile(equity, FAN_PERCENTILES, axis=0)
    frame = pd.DataFrame(
        {f"p{level}": percentiles[index] for index, level in enumerate(FAN_PERCENTILES)}
    )
    frame.insert(0, "trade", np.arange(pnls.size + 1))
    return frame


def fan_figure(fan: pd.DataFrame, title: str) -> go.Figure:
    """Return a fan chart: 5-95 and 25-75 percentile bands around the median."""
    if fan.empty:
        return empty_figure(title, "The run has no trades to resample", height=300)
    figure = go.Figure()
    for low, high, opacity in (("p5", "p95", 0.15), ("p25", "p75", 0.3)):
        figure.add_trace(
            go.Scatter(x=fan["trade"], y=fan[high], mode="lines", line={"width": 0}, name=high)
        )
        figure.add_trace(
            go.Scatter(
                x=fan["trade"],
                y=fan[low],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=f"rgba(23, 78, 166, {opacity})",
                name=f"{low}-{high}",
            )
        )
    figure.add_trace(
        go.Scatter(x=fan["trade"], y=fan["p50"], mode="lines", name="median", line={"width": 2})
    )
    figure.update_layout(title=title, margin=FIGURE_MARGIN, height=300)
    figure.update_xaxes(title="trade")
    return figure


def fills_frame(fills: Sequence[FillExecuted]) -> pd.DataFrame:
    """Return fills seen on the bus as a frame."""
    return pd.DataFrame(
        [fill.model_dump(mode="python") for fill in fills],
        columns=["fill_id", "filled_at", "symbol", "side", "quantity", "price", "strategy"],
    )
