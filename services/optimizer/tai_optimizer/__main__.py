"""Run the optimizer service as its own process: ``python -m tai_optimizer``."""

from __future__ import annotations

from tai_core.settings import load_settings
from tai_optimizer.app import create_app
from tai_optimizer.config import OptimizerSettings
from tai_runtime import run_service


def main() -> None:
    """Load settings from the environment (failing fast, naming the setting) and serve."""
    run_service("optimizer", load_settings(OptimizerSettings), create_app)


if __name__ == "__main__":
    main()
