"""Paths of the sample data bundled with the ingestion package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_path(name: str) -> Path:
    """Return the path of a bundled sample file (``EURUSD.csv`` or ``GOOG.csv``)."""
    path = Path(str(resources.files("tai_ingestion") / "data" / name))
    if not path.is_file():
        raise FileNotFoundError(f"no bundled sample named {name}")
    return path
