"""The research commands: JSON, self-contained HTML, and runs stored with their reports."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from tai_events.market import Timeframe
from tai_ingestion.samples import sample_path
from tai_optimizer.research_cli import (
    json_ready,
    montecarlo_command,
    optimize_command,
    parse_range,
    walk_forward_command,
)
from tai_optimizer.synthetic import bars_from_frame
from tai_store.database import Store
from tai_store.research_repository import ResearchRepository


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("walk-forward")(walk_forward_command)
    app.command("optimize")(optimize_command)
    app.command("montecarlo")(montecarlo_command)
    return app


@pytest.fixture
def eurusd_slice(tmp_path: Path) -> Path:
    path = tmp_path / "EURUSD.csv"
    pd.read_csv(sample_path("EURUSD.csv"), index_col=0).iloc[:1600].to_csv(path)
    return path


def _self_contained(page: str) -> bool:
    return "<script src=" not in page and "Plotly" in page and page.startswith("<!DOCTYPE html>")


def test_walk_forward_command_writes_reports_and_stores_the_run(
    tmp_path: Path, eurusd_slice: Path
) -> None:
    # Arrange
    ledger = f"sqlite+aiosqlite:///{tmp_path}/ledger.sqlite"
    json_path, html_path = tmp_path / "wf.json", tmp_path / "wf.html"

    # Act
    result = CliRunner().invoke(
        _app(),
        [
            "walk-forward",
            "--data",
            str(eurusd_slice),
            "--selector",
            "grid",
            "--fast-range",
            "5:15:5",
            "--slow-range",
            "20:40:20",
            "--json",
            str(json_path),
            "--html",
            str(html_path),
            "--record",
            ledger,
        ],
    )

    # Assert
    assert result.exit_code == 0, result.output
    report = json.loads(json_path.read_text())
    assert len(report["windows"]) == 5  # (1600 - 720 - 24 - 168) // 168 + 1
    assert report["in_sample"]["trades"] > 0
    assert "stitched_sharpe" in report["out_of_sample"]
    assert _self_contained(html_path.read_text())

    async def stored() -> list[str]:
        store = Store(ledger)
        try:
            async with store.transaction() as unit:
                runs = await ResearchRepository(unit.session).list_runs("walk_forward")
        finally:
            await store.close()
        return [run.status for run in runs if run.report["windows"]]

    assert asyncio.run(stored()) == ["succeeded"]


def test_optimize_command_reports_deflated_sharpe_and_pbo(
    tmp_path: Path, eurusd_slice: Path
) -> None:
    json_path, html_path = tmp_path / "opt.json", tmp_path / "opt.html"

    result = CliRunner().invoke(
        _app(),
        [
            "optimize",
            "--data",
            str(eurusd_slice),
            "--trials",
            "12",
            "--folds",
            "2",
            "--json",
            str(json_path),
            "--html",
            str(html_path),
        ],
        env={"DATABASE_URL": ""},
    )

    assert result.exit_code == 0, result.output
    report = json.loads(json_path.read_text())
    assert {"deflated_sharpe", "pbo", "monte_carlo", "out_of_sample"} <= set(report)
    assert len(report["trials"]) == 12
    assert _self_contained(html_path.read_text())


def test_montecarlo_command_writes_a_fan_chart(tmp_path: Path, eurusd_slice: Path) -> None:
    json_path, html_path = tmp_path / "mc.json", tmp_path / "mc.html"

    result = CliRunner().invoke(
        _app(),
        [
            "montecarlo",
            "--data",
            str(eurusd_slice),
            "--simulations",
            "200",
            "--json",
            str(json_path),
            "--html",
            str(html_path),
        ],
    )

    assert result.exit_code == 0, result.output
    report = json.loads(json_path.read_text())
    assert [run["method"] for run in report["simulations"]] == ["returns", "bootstrap", "reshuffle"]
    assert _self_contained(html_path.read_text())


def test_optimize_with_several_workers_needs_a_shared_storage(eurusd_slice: Path) -> None:
    result = CliRunner().invoke(
        _app(),
        ["optimize", "--data", str(eurusd_slice), "--workers", "2"],
        env={"DATABASE_URL": ""},
    )

    assert result.exit_code == 2
    assert "shared study" in result.output


def test_ranges_parse_low_high_and_optional_step() -> None:
    assert parse_range("5:20") == (5, 20, 1)
    assert parse_range("5:20:5") == (5, 20, 5)
    with pytest.raises(ValueError, match="LOW:HIGH"):
        parse_range("5")


def test_json_ready_turns_non_finite_numbers_into_null() -> None:
    assert json_ready({"a": float("nan"), "b": [1.0, float("inf")]}) == {
        "a": None,
        "b": [1.0, None],
    }


def test_optimize_daily_runs_the_daily_job_on_the_ledger(tmp_path: Path) -> None:
    # Arrange: a ledger holding 1500 EURUSD bars; production (10, 30) has no live record
    ledger = f"sqlite+aiosqlite:///{tmp_path}/ledger.sqlite"
    frame = pd.read_csv(sample_path("EURUSD.csv"), index_col=0, parse_dates=True).iloc[:1500]

    async def fill() -> None:
        store = Store(ledger)
        try:
            await store.migrate()
            async with store.transaction() as unit:
                await unit.ohlcv.upsert_many(
                    bars_from_frame(frame, symbol="EURUSD", timeframe=Timeframe.H1)
                )
        finally:
            await store.close()

    asyncio.run(fill())
    json_path = tmp_path / "daily.json"

    # Act
    result = CliRunner().invoke(
        _app(),
        [
            "optimize",
            "--daily",
            "--strategy",
            "sma_cross",
            "--storage",
            ledger,
            "--symbol",
            "EURUSD",
            "--trials",
            "8",
            "--folds",
            "2",
            "--json",
            str(json_path),
        ],
        env={"AMQP_URL": "memory://"},
    )

    # Assert
    assert result.exit_code == 0, result.output
    report = json.loads(json_path.read_text())
    assert set(report["strategies"]) == {"sma_cross"}
    outcome = report["strategies"]["sma_cross"]
    assert outcome["action"] == "no_drift"
    assert outcome["data_source"] == "ledger"

    async def runs() -> list[tuple[str, dict[str, object]]]:
        store = Store(ledger)
        try:
            async with store.transaction() as unit:
                return [
                    (run.summary["action"], run.report)
                    for run in await ResearchRepository(unit.session).list_runs("daily")
                ]
        finally:
            await store.close()

    ((action, stored),) = asyncio.run(runs())
    assert action == outcome["action"]
    drift = stored["drift"]
    assert isinstance(drift, dict)
    assert drift["reasons"] == []
    assert drift["notes"]  # no live trading yet: judged on a replay
