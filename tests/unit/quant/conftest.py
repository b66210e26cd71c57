"""Fixtures for the quant tests: the bundled sample bars."""

from __future__ import annotations

import pandas as pd
import pytest

from tai_ingestion.samples import sample_path


def _load(name: str) -> pd.DataFrame:
    # The samples ship inside the ingestion package, so these tests never skip for want of data.
    return pd.read_csv(sample_path(name), index_col=0, parse_dates=True)


@pytest.fixture(scope="session")
def eurusd() -> pd.DataFrame:
    """Hourly EURUSD bars (Open, High, Low, Close, Volume)."""
    return _load("EURUSD.csv")


@pytest.fixture(scope="session")
def goog() -> pd.DataFrame:
    """Daily GOOG bars."""
    return _load("GOOG.csv")
