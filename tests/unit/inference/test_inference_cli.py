"""``trading-ai train`` trains, registers and prints validation metrics; the bench runs."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tai_cli.commands import app
from tai_store import Store
from tai_store.ml_repository import MlModelRepository
from tests.unit.inference.conftest import BUNDLED_EURUSD

BENCH = Path(__file__).resolve().parents[3] / "bench" / "ml_bench.py"


async def _registered(url: str) -> list[tuple[str, str, str]]:
    store = Store(url)
    try:
        async with store.transaction() as unit:
            models = await MlModelRepository(unit.session).list("EURUSD", "1h")
    finally:
        await store.close()
    return [(model.algorithm, model.stage, model.artifact_format) for model in models]


@pytest.mark.parametrize(
    ("options", "algorithm", "artifact_format"),
    [
        (["--model", "xgboost"], "xgboost", "xgboost-ubj"),
        (["--model", "lightgbm"], "lightgbm", "lightgbm-text"),
        (["--model", "ensemble"], "ensemble", "bundle-json"),
        (["--model", "xgboost", "--per-regime"], "per_regime_xgboost", "bundle-json"),
    ],
)
def test_train_command_registers_the_model_and_prints_its_metrics_beside_the_baselines(
    tmp_path: Path, options: list[str], algorithm: str, artifact_format: str
) -> None:
    # Arrange: 1,500 bundled bars keep the run short
    data = tmp_path / "EURUSD.csv"
    pd.read_csv(BUNDLED_EURUSD, index_col=0).iloc[:1500].to_csv(data)
    url = f"sqlite+aiosqlite:///{tmp_path / 'registry.sqlite'}"

    # Act
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--symbol",
            "EURUSD",
            "--timeframe",
            "1h",
            *options,
            "--data",
            str(data),
            "--database-url",
            url,
            "--folds",
            "2",
        ],
        env={"COLUMNS": "200"},
    )

    # Assert
    assert result.exit_code == 0, result.output
    for label in ("log-loss", "balanced accuracy", "F1 LONG", "walk-forward", "validation"):
        assert label in result.output
    assert "class prior (walk-forward)" in result.output
    assert ("single model (walk-forward)" in result.output) is (algorithm != "xgboost")
    assert "target 3 ATR / stop 2 ATR(14) / 24 bars / p >= 0.5" in " ".join(result.output.split())
    assert "(production" in result.output
    assert asyncio.run(_registered(url)) == [(algorithm, "production", artifact_format)]


def test_train_command_refuses_an_unknown_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--model", "catboost"])
    assert result.exit_code == 2


def test_train_command_refuses_an_impossible_trade_plan(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--threshold", "1.5"])
    assert result.exit_code == 2
    assert "invalid trade plan" in result.output


def test_ml_bench_smoke_run_writes_its_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange
    specification = importlib.util.spec_from_file_location("ml_bench", BENCH)
    assert specification is not None
    assert specification.loader is not None
    bench = importlib.util.module_from_spec(specification)
    specification.loader.exec_module(bench)
    output = tmp_path / "results-ml.json"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "ml_bench",
            "--bars",
            "800",
            "--repeats",
            "1",
            "--prediction-calls",
            "20",
            "--output",
            str(output),
        ],
    )

    # Act
    bench.main()

    # Assert
    results = json.loads(output.read_text(encoding="utf-8"))
    assert results["bars"] == 800
    assert results["max_abs_difference_batch_vs_incremental"] <= 1e-9
    for key in (
        "incremental_feature_update_us_per_bar",
        "batch_recompute_us_per_new_bar",
        "single_prediction_us_per_call",
    ):
        assert results[key] > 0
    assert set(results["models"]) == {"xgboost", "ensemble", "per_regime_xgboost"}
    for kind in results["models"].values():
        assert kind["training_seconds"] > 0
        assert kind["prediction_us_per_call"] > 0
    assert results["models"]["ensemble"]["artifact_format"] == "bundle-json"
