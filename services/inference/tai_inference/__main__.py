"""Run the inference service as its own process: `python -m tai_inference`."""

from __future__ import annotations

from tai_core.settings import load_settings
from tai_inference.app import create_app
from tai_inference.config import InferenceSettings
from tai_runtime import run_service


def main() -> None:
    """Load settings from the environment (failing fast, naming the setting) and serve."""
    run_service("inference", load_settings(InferenceSettings), create_app)


if __name__ == "__main__":
    main()
