"""Run the notifier as its own process: ``python -m tai_notifier``."""

from __future__ import annotations

from tai_core.settings import load_settings
from tai_notifier.app import create_app
from tai_notifier.config import NotifierSettings
from tai_runtime import run_service


def main() -> None:
    """Load settings from the environment (failing fast, naming the setting) and serve."""
    run_service("notifier", load_settings(NotifierSettings), create_app)


if __name__ == "__main__":
    main()
