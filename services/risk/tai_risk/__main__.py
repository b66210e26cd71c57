"""Run the risk service as its own process: `python -m tai_risk`."""

from __future__ import annotations

from tai_core.settings import load_settings
from tai_risk.app import create_app
from tai_risk.config import RiskSettings
from tai_runtime import run_service


def main() -> None:
    """Load settings from the environment (failing fast, naming the setting) and serve."""
    run_service("risk", load_settings(RiskSettings), create_app)


if __name__ == "__main__":
    main()
