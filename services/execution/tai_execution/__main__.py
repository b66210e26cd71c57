"""Run the execution service as its own process: `python -m tai_execution`."""

from __future__ import annotations

from tai_core.settings import load_settings
from tai_execution.app import create_app
from tai_execution.config import ExecutionSettings
from tai_runtime import run_service


def main() -> None:
    """Load settings from the environment (failing fast, naming the setting) and serve."""
    run_service("execution", load_settings(ExecutionSettings), create_app)


if __name__ == "__main__":
    main()
