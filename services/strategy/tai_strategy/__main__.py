"""Run the strategy service as its own process: `python -m tai_strategy`."""

from __future__ import annotations

from tai_core.settings import load_settings
from tai_runtime import run_service
from tai_strategy.app import create_app
from tai_strategy.config import StrategySettings


def main() -> None:
    """Load settings from the environment (failing fast, naming the setting) and serve."""
    run_service("strategy", load_settings(StrategySettings), create_app)


if __name__ == "__main__":
    main()
