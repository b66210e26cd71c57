"""The backtest command: its JSON, its offline HTML, and metrics cross-checked with empyrical."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import empyrical  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import tai_ingestion
from tai_events.market import Timeframe
from tai_ingestion.replay import load_bars
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import BacktestConfig, EventDrivenBacktester
from tai_optimizer.backtest.sizing import AllInWholeUnits
from tai_optimizer.cli import backtest_command
from tai_strategy.sma_cross import SmaCrossParameters, SmaCrossStrategy

GOOG = Path(tai_ingestion.__file__).parent / "data" / "GOOG.csv"
BENCH = Path(__file__).resolve().parents[3] / "bench" / "backtest_bench.py"


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("backtest")(backtest_command)
    app.command("noop")(lambda: None)
    return app


def test_backtest_command_writes_json_and_self_contained_html(tmp_path: Path) -> None:
    # Arrange
    json_path, html_path = tmp_path / "out.json", tmp_path / "out.html"
    arguments = [
        "backtest",
        "--strategy",
        "sma_cross",
        "--param",
        "fast=10",
        "--param",
        "slow=20",
        "--data",
        str(GOOG),
        "--symbol",
        "GOOG",
        "--cash",
        "10000",
        "--commission",
        "0.002",
        "--json",
        str(json_path),
        "--html",
        str(html_path),
    ]
    # Act
    outcome = CliRunner().invoke(_app(), arguments)
    # Assert
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(json_path.read_text())
    for key in (
        "return_pct",
        "sharpe",
        "max_drawdown_pct",
        "trades",
        "win_rate_pct",
        "final_equity",
    ):
        assert report[key] is not None
    assert report["trades"] == len(report["trade_list"]) == 93
    first = report["trade_list"][0]
    assert {"entry_time", "exit_time", "entry_price", "exit_price", "size", "pnl"} <= set(first)
    assert report["return_pct"] == pytest.approx((report["final_equity"] / 10_000 - 1) * 100)
    page = html_path.read_text()
    assert "<script src" not in page
    assert "Plotly.newPlot" in page


def test_unknown_strategy_is_a_usage_error(tmp_path: Path) -> None:
    outcome = CliRunner().invoke(
        _app(),
        ["backtest", "--strategy", "nope", "--data", str(GOOG), "--cash", "1", "--commission", "0"],
    )
    assert outcome.exit_code == 2
    assert "unknown strategy" in outcome.output


def test_reported_sharpe_sortino_and_drawdown_agree_with_empyrical(tmp_path: Path) -> None:
    # Arrange
    json_path = tmp_path / "out.json"
    CliRunner().invoke(
        _app(),
        [
            "backtest",
            "--strategy",
            "sma_cross",
            "--param",
            "fast=10",
            "--param",
            "slow=30",
            "--data",
            str(GOOG),
            "--cash",
            "10000",
            "--commission",
            "0.001",
            "--json",
            str(json_path),
        ],
    )
    report = json.loads(json_path.read_text())
    bars = load_bars(GOOG, symbol="GOOG", timeframe=Timeframe.D1).bars
    result = EventDrivenBacktester(
        SmaCrossStrategy(SmaCrossParameters(fast=10, slow=30)),
        BacktestConfig(
            cash=10_000, costs=CostModel(commission_rate=0.001), sizer=AllInWholeUnits()
        ),
    ).run(bars)
    returns = result.equity.pct_change().dropna()
    # Act / Assert
    assert report["final_equity"] == pytest.approx(result.final_equity)
    assert report["sharpe"] == pytest.approx(empyrical.sharpe_ratio(returns, annualization=252))
    assert report["metrics"]["sortino_ratio"] == pytest.approx(
        empyrical.sortino_ratio(returns, annualization=252)
    )
    assert report["max_drawdown_pct"] == pytest.approx(-empyrical.max_drawdown(returns) * 100)
    assert report["metrics"]["annualised_volatility_pct"] == pytest.approx(
        empyrical.annual_volatility(returns, annualization=252) * 100
    )
    assert np.isfinite(report["metrics"]["calmar_ratio"])


def test_benchmark_smoke_on_a_few_hundred_bars() -> None:
    # Arrange
    spec = importlib.util.spec_from_file_location("backtest_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    sample = pd.read_csv(
        Path(tai_ingestion.__file__).parent / "data" / "EURUSD.csv", index_col=0, parse_dates=True
    )
    frame = bench.bootstrap_frame(sample, 600, seed=3)
    # Act
    results = bench.run_event_pair(frame, 5, 20)
    # Assert (the pair asserts identical trades itself)
    assert results["bars"] == 600
    assert results["trades"] > 0
    assert results["final_equity_relative_gap"] < 1e-3
