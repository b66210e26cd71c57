"""Self-contained HTML reports (plotly inlined) for walk-forward, optimisation and Monte Carlo."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

_STYLE = (
    "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}</style>"
)


def _page(title: str, headline: dict[str, Any], figures: list[go.Figure]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(_format(value))}</td></tr>"
        for key, value in headline.items()
    )
    charts = "".join(
        figure.to_html(full_html=False, include_plotlyjs=index == 0)
        for index, figure in enumerate(figures)
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"{_STYLE}</head><body><h1>{html.escape(title)}</h1><table>{rows}</table>{charts}"
        "</body></html>"
    )


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "n/a" if value is None else str(value)


def _heat_map(points: list[tuple[int, int, float]], title: str, label: str) -> go.Figure:
    """Return a fast x slow heat map of the mean value at each parameter pair."""
    cells: dict[tuple[int, int], list[float]] = defaultdict(list)
    for fast, slow, value in points:
        cells[(fast, slow)].append(value)
    fasts = sorted({fast for fast, _ in cells})
    slows = sorted({slow for _, slow in cells})
    grid = [
        [
            (sum(cells[(fast, slow)]) / len(cells[(fast, slow)])) if (fast, slow) in cells else None
            for fast in fasts
        ]
        for slow in slows
    ]
    figure = go.Figure(
        go.Heatmap(x=fasts, y=slows, z=grid, colorscale="RdYlGn", colorbar={"title": label})
    )
    figure.update_layout(title=title, xaxis_title="fast", yaxis_title="slow", height=500)
    return figure


def walk_forward_html(summary: dict[str, Any]) -> str:
    """Return the walk-forward page: stitched OOS equity, IS vs OOS per window, heat map."""
    equity = summary["stitched_equity"]
    windows = summary["windows"]
    curves = make_subplots(
        rows=2,
        cols=1,
        subplot_titles=("Stitched out-of-sample equity", "Sharpe per window"),
        vertical_spacing=0.12,
    )
    curves.add_trace(
        go.Scatter(x=equity["times"], y=equity["values"], name="OOS equity"), row=1, col=1
    )
    indexes = [window["index"] for window in windows]
    for key, name in (("in_sample", "in-sample"), ("out_of_sample", "out-of-sample")):
        curves.add_trace(
            go.Bar(x=indexes, y=[window[key]["sharpe"] for window in windows], name=name),
            row=2,
            col=1,
        )
    curves.update_layout(height=800)
    heat = _heat_map(
        [
            (
                window["parameters"]["fast"],
                window["parameters"]["slow"],
                window["out_of_sample"]["sharpe"],
            )
            for window in windows
        ],
        "Chosen parameters: mean out-of-sample Sharpe",
        "OOS Sharpe",
    )
    headline = {
        "strategy": summary["strategy"],
        "windows": len(windows),
        **{f"in-sample {key}": value for key, value in summary["in_sample"].items()},
        **{f"out-of-sample {key}": value for key, value in summary["out_of_sample"].items()},
        "walk-forward efficiency": summary["walk_forward_efficiency"],
        "Sharpe efficiency": summary["sharpe_efficiency"],
        "parameter stability": summary["parameter_stability"],
        "configuration": summary["config"],
    }
    return _page("Walk-forward optimisation", headline, [curves, heat])


def fan_chart(bands: dict[str, list[float]], title: str) -> go.Figure:
    """Return a Monte Carlo fan chart: the 5-95 % band and the median path."""
    steps = list(range(len(bands["p50"])))
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=steps, y=bands["p95"], name="95th percentile", line={"width": 0}))
    figure.add_trace(
        go.Scatter(
            x=steps,
            y=bands["p5"],
            name="5th percentile",
            fill="tonexty",
            fillcolor="rgba(31,119,180,0.25)",
            line={"width": 0},
        )
    )
    figure.add_trace(go.Scatter(x=steps, y=bands["p50"], name="median"))
    figure.update_layout(title=title, xaxis_title="step", yaxis_title="equity", height=500)
    return figure


def _monte_carlo_headline(prefix: str, result: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{prefix} probability of ruin": result["probability_of_ruin"],
        f"{prefix} final equity": result["final_equity"],
        f"{prefix} max drawdown %": result["max_drawdown_pct"],
    }


def optimisation_html(report: dict[str, Any]) -> str:
    """Return the optimisation page: trial heat map, trial history, Monte Carlo fan chart."""
    trials = [trial for trial in report["trials"] if trial["value"] is not None]
    heat = _heat_map(
        [
            (int(trial["parameters"]["fast"]), int(trial["parameters"]["slow"]), trial["value"])
            for trial in trials
            if {"fast", "slow"} <= set(trial["parameters"])
        ],
        "Objective by parameters (mean over trials)",
        "objective",
    )
    history = go.Figure(
        go.Scatter(
            x=[trial["number"] for trial in trials],
            y=[trial["value"] for trial in trials],
            mode="markers",
            name="trial",
        )
    )
    history.update_layout(title="Objective per trial", xaxis_title="trial", height=400)
    figures = [heat, history]
    monte_carlo = report["monte_carlo"]
    figures.append(fan_chart(monte_carlo["returns"]["bands"], "Monte Carlo (returns bootstrap)"))
    headline: dict[str, Any] = {
        "study": report["study"],
        "best parameters": report["best_parameters"],
        "best objective": report["best_value"],
        "in-sample": report["in_sample"],
        "out-of-sample": report["out_of_sample"],
        "deflated Sharpe": report["deflated_sharpe"],
        "PBO (CSCV)": report["pbo"],
        **_monte_carlo_headline("Monte Carlo", monte_carlo["returns"]),
    }
    return _page("Optimisation", headline, figures)


def monte_carlo_html(report: dict[str, Any]) -> str:
    """Return the Monte Carlo page: one fan chart per method, with its distributions."""
    figures = [
        fan_chart(result["bands"], f"Monte Carlo: {result['method']}")
        for result in report["simulations"]
    ]
    headline: dict[str, Any] = {"parameters": report["parameters"], "backtest": report["backtest"]}
    for result in report["simulations"]:
        headline.update(_monte_carlo_headline(result["method"], result))
    return _page("Monte Carlo robustness", headline, figures)


def write_report(text: str, path: Path) -> None:
    """Write a report file (creating its directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
