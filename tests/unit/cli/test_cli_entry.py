"""The ``trading-ai`` entry point starts a service without loading the research tools."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_entry_point_does_not_import_the_tools() -> None:
    # Act
    result = _run(
        "import sys, tai_cli.main; "
        "print(sorted(m for m in ('tai_cli.commands', 'optuna', 'tai_optimizer', 'xgboost') "
        "if m in sys.modules))"
    )
    # Assert
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_an_unknown_service_is_refused_by_the_full_command_set() -> None:
    # Act
    result = subprocess.run(
        [sys.executable, "-m", "tai_cli.main", "service", "nonsense"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Assert
    assert result.returncode == 2
    assert "unknown service 'nonsense'" in result.stderr + result.stdout
