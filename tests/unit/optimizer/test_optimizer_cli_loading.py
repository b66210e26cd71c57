"""How the research commands load their data: symbols from file names, cached validated bars."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tai_events.market import Timeframe
from tai_ingestion.replay import load_bars
from tai_ingestion.samples import sample_path
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import BacktestConfig, EventDrivenBacktester
from tai_optimizer.backtest.sizing import AllInWholeUnits
from tai_optimizer.cli import backtest_command
from tai_optimizer.research_cli import montecarlo_command
from tai_strategy.sma_cross import SmaCrossParameters, SmaCrossStrategy


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("backtest")(backtest_command)
    app.command("montecarlo")(montecarlo_command)
    return app


def _backtest(data: Path, *extra: str) -> list[str]:
    return [
        "backtest",
        "--strategy",
        "sma_cross",
        "--param",
        "fast=10",
        "--param",
        "slow=20",
        "--data",
        str(data),
        "--cash",
        "100000",
        "--commission",
        "0.0002",
        *extra,
    ]


@pytest.fixture
def dotted(tmp_path: Path) -> Path:
    path = tmp_path / "eurusd.2024.csv"
    path.write_bytes(sample_path("EURUSD.csv").read_bytes())
    return path


def test_a_file_name_with_dots_gets_a_hint_to_pass_the_symbol(dotted: Path) -> None:
    # Act
    backtest = CliRunner().invoke(_app(), _backtest(dotted))
    montecarlo = CliRunner().invoke(_app(), ["montecarlo", "--data", str(dotted)])
    # Assert
    for outcome in (backtest, montecarlo):
        said = " ".join(outcome.output.split())  # the console wraps long lines
        assert outcome.exit_code == 2
        assert "'eurusd.2024.csv' names no instrument" in said
        assert said.endswith("pass --symbol, e.g. --symbol EURUSD")
        assert "validation error" not in said


def test_with_the_symbol_given_the_dotted_file_backtests(dotted: Path, tmp_path: Path) -> None:
    # Arrange
    json_path = tmp_path / "out.json"
    # Act
    outcome = CliRunner().invoke(
        _app(), _backtest(dotted, "--symbol", "EURUSD", "--json", str(json_path))
    )
    # Assert
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(json_path.read_text())["symbol"] == "EURUSD"


def test_the_command_s_result_is_the_engine_s_on_the_loaded_bars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: run twice, the second run from the cache of validated bars
    monkeypatch.setenv("TAI_BAR_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "EURUSD.csv"
    data.write_bytes(sample_path("EURUSD.csv").read_bytes())
    reports = []
    for run in range(2):
        json_path = tmp_path / f"run{run}.json"
        # Act
        outcome = CliRunner().invoke(_app(), _backtest(data, "--json", str(json_path)))
        assert outcome.exit_code == 0, outcome.output
        reports.append(json.loads(json_path.read_text()))
    # Assert
    assert len(list((tmp_path / "cache").glob("*.parquet"))) == 1
    assert reports[0] == reports[1]
    bars = load_bars(data, symbol="EURUSD", timeframe=Timeframe.H1).bars
    result = EventDrivenBacktester(
        SmaCrossStrategy(SmaCrossParameters(fast=10, slow=20, quantity=1)),
        BacktestConfig(
            cash=100_000, costs=CostModel(commission_rate=0.0002), sizer=AllInWholeUnits()
        ),
    ).run(bars)
    assert reports[0]["trades"] == len(result.trades)
    assert reports[0]["final_equity"] == pytest.approx(result.final_equity, rel=1e-12)


def test_a_symbol_that_is_no_symbol_is_refused_up_front(dotted: Path) -> None:
    # Act
    outcome = CliRunner().invoke(_app(), _backtest(dotted, "--symbol", "EUR.USD"))
    # Assert
    assert outcome.exit_code == 2
    assert "symbol 'EUR.USD' is not 1-32 upper-case letters" in " ".join(outcome.output.split())
