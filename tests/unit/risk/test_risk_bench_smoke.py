"""The risk benchmark runs end to end (a few iterations; timings are not asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.factories import REPOSITORY_ROOT


def test_risk_bench_writes_every_case(tmp_path: Path) -> None:
    # Arrange
    spec = importlib.util.spec_from_file_location(
        "risk_bench", REPOSITORY_ROOT / "bench" / "risk_bench.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    output = tmp_path / "results-risk.json"
    # Act
    module.main(["--iterations", "5", "--output", str(output)])
    # Assert
    report = json.loads(output.read_text())
    assert report["open_positions"] == 10
    assert set(report["results"]) >= {
        "sign only (baseline)",
        "gates only (baseline)",
        "full check, historical",
        "full check after a new bar, historical",
    }
    assert all(case["p99_us"] >= case["p50_us"] > 0 for case in report["results"].values())
