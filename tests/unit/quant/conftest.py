"""Fixtures for the quant tests: the bundled sample bars."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

DATA_DIRECTORY = Path(__file__).resolve().parents[4] / "shared" / "data"


def _load(name: str) -> pd.DataFrame:
    path = DATA_DIRECTORY / name
    if not path.exists():
        pytest.skip(f"sample data {path} is not available")
    return pd.read_csv(path, index_col=0, parse_dates=True)


@pytest.fixture(scope="session")
def eurusd() -> pd.DataFrame:
    """Hourly EURUSD bars (Open, High, Low, Close, Volume)."""
    return _load("EURUSD.csv")


@pytest.fixture(scope="session")
def goog() -> pd.DataFrame:
    """Daily GOOG bars."""
    return _load("GOOG.csv")
