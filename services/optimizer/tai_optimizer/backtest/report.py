"""Backtest reports: headline metrics (tai_quant.metrics), JSON and a self-contained HTML page."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tai_events.market import BarClosed
from tai_optimizer.backtest.engine import BacktestResult
from tai_quant.metrics import drawdown_series, performance_report


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_dict(
    result: BacktestResult,
    *,
    strategy: str,
    parameters: dict[str, Any],
    symbol: str,
    periods_per_year: float | None = None,
) -> dict[str, Any]:
    """Return the JSON-ready report: headline numbers, every metric and the trades."""
    equity = result.equity
    trades = result.trades
    metrics = performance_report(
        equity, [trade.as_metrics_trade() for trade in trades], periods_per_year=periods_per_year
    ).to_dict()
    report: dict[str, Any] = {
        "strategy": strategy,
        "parameters": parameters,
        "symbol": symbol,
        "bars": result.bar_count,
        "initial_cash": result.initial_cash,
        "final_equity": result.final_equity,
        "return_pct": metrics["total_return_pct"],
        "sharpe": metrics["sharpe_ratio"],
        "max_drawdown_pct": metrics["max_drawdown_pct"],
        "trades": len(trades),
        "win_rate_pct": metrics["win_rate_pct"],
        "metrics": {key: _finite(value) for key, value in metrics.items()},
        "open_positions": result.final_positions,
        "rejections": [
            {
                "order_id": item.order_id,
                "stage": item.stage,
                "rule": item.rule,
                "reason": item.reason,
            }
            for item in result.rejections
        ],
        "trade_list": [trade.to_dict() for trade in trades],
    }
    return report


def write_json(report: dict[str, Any], path: Path) -> None:
    """Write the report as indented JSON."""
    path.write_text(json.dumps(report, indent=2, allow_nan=False), encoding="utf-8")


def html_report(report: dict[str, Any], result: BacktestResult, bars: Sequence[BarClosed]) -> str:
    """Return a self-contained HTML page (plotly inlined): price with trades, equity, drawdown."""
    import plotly.graph_objects as go  # noqa: PLC0415 - only the HTML report draws
    from plotly.subplots import make_subplots  # noqa: PLC0415

    times = pd.DatetimeIndex([bar.opened_at for bar in bars])
    figure = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.5, 0.3, 0.2],
        vertical_spacing=0.03,
        subplot_titles=("Price and trades", "Equity", "Drawdown (%)"),
    )
    figure.add_trace(
        go.Candlestick(
            x=times,
            open=[bar.open for bar in bars],
            high=[bar.high for bar in bars],
            low=[bar.low for bar in bars],
            close=[bar.close for bar in bars],
            name=report["symbol"],
        ),
        row=1,
        col=1,
    )
    for label, sign, symbol, color in (
        ("long entry", 1.0, "triangle-up", "green"),
        ("short entry", -1.0, "triangle-down", "red"),
    ):
        chosen = [trade for trade in result.trades if trade.size * sign > 0]
        figure.add_trace(
            go.Scatter(
                x=[trade.entry_time for trade in chosen],
                y=[trade.entry_price for trade in chosen],
                mode="markers",
                marker={"symbol": symbol, "color": color, "size": 9},
                name=label,
                text=[f"size {trade.size:g}, P&L {trade.pnl:.2f}" for trade in chosen],
            ),
            row=1,
            col=1,
        )
    figure.add_trace(
        go.Scatter(
            x=[trade.exit_time for trade in result.trades],
            y=[trade.exit_price for trade in result.trades],
            mode="markers",
            marker={"symbol": "x", "color": "black", "size": 7},
            name="exit",
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(x=result.equity.index, y=result.equity.to_numpy(), name="equity"), row=2, col=1
    )
    drawdown = drawdown_series(result.equity) * 100.0
    figure.add_trace(
        go.Scatter(x=drawdown.index, y=drawdown.to_numpy(), name="drawdown", fill="tozeroy"),
        row=3,
        col=1,
    )
    figure.update_layout(height=900, xaxis_rangeslider_visible=False, showlegend=True)
    rows = "".join(
        f"<tr><th>{key}</th><td>{_format(value)}</td></tr>"
        for key, value in report["metrics"].items()
    )
    title = f"{report['strategy']} on {report['symbol']}"
    chart = figure.to_html(full_html=False, include_plotlyjs=True)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>Backtest: {title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}</style></head><body>"
        f"<h1>Backtest: {title}</h1><p>parameters: {json.dumps(report['parameters'])}</p>"
        f"<table>{rows}</table>{chart}</body></html>"
    )


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}"
    return "n/a" if value is None else str(value)


def write_html(
    report: dict[str, Any], result: BacktestResult, bars: Sequence[BarClosed], path: Path
) -> None:
    """Write the self-contained HTML report."""
    path.write_text(html_report(report, result, bars), encoding="utf-8")
