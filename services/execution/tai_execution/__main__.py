"""Run the execution service as its own process: `python -m tai_execution` (or `trading-ai service execution`)."""

from __future__ import annotations

from tai_core.settings import load_settings
from tai_runtime import run_service
from tai_execution.app import create_app
from tai_execution.config import ExecutionSettings


def main() -> None:
    """Load settings from the environment (failing fast, naming the setting) and serve."""
    run_service("execution", load_settings(ExecutionSettings), create_app)


if __name__ == "__main__":
    main()
