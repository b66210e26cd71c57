"""Run the ingestion service as its own process: `python -m tai_ingestion`."""

from __future__ import annotations

from tai_core.settings import load_settings
from tai_ingestion.app import IngestionApp, create_app
from tai_ingestion.config import IngestionSettings
from tai_runtime import run_service


def _finished(app: IngestionApp) -> object:
    return app.done if app.settings.exit_when_done else None


def main() -> None:
    """Load settings from the environment (failing fast, naming the setting) and serve."""
    run_service(
        "ingestion",
        load_settings(IngestionSettings),
        create_app,
        finished=_finished,  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
