"""Fixtures for the inference tests: bundled bars and small models trained once per session."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tai_inference.training import TrainingOptions, TrainingResult, train_model
from tai_quant.features import normalise_ohlcv

BUNDLED_EURUSD = (
    Path(__file__).resolve().parents[3]
    / "services"
    / "ingestion"
    / "tai_ingestion"
    / "data"
    / "EURUSD.csv"
)
TRAINED_AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
FAST = TrainingOptions(evaluate=False, max_rounds=60, early_stopping_rounds=10)


@pytest.fixture(scope="session")
def eurusd_bars() -> pd.DataFrame:
    """The bundled hourly EURUSD bars (lower-case OHLCV, UTC index)."""
    return normalise_ohlcv(pd.read_csv(BUNDLED_EURUSD, index_col=0, parse_dates=True))


@pytest.fixture(scope="session")
def training_bars(eurusd_bars: pd.DataFrame) -> pd.DataFrame:
    """The first 2,500 bars: enough for every stage, quick to fit."""
    return eurusd_bars.iloc[:2500]


@pytest.fixture(scope="session")
def xgboost_model(training_bars: pd.DataFrame) -> TrainingResult:
    return train_model(training_bars, FAST, created_at=TRAINED_AT)


@pytest.fixture(scope="session")
def second_xgboost_model(training_bars: pd.DataFrame) -> TrainingResult:
    return train_model(training_bars, replace(FAST, seed=11, max_depth=3), created_at=TRAINED_AT)


@pytest.fixture(scope="session")
def evaluated_lightgbm_model(training_bars: pd.DataFrame) -> TrainingResult:
    options = TrainingOptions(
        algorithm="lightgbm", folds=2, max_rounds=60, early_stopping_rounds=10
    )
    return train_model(training_bars, options, created_at=TRAINED_AT)


@pytest.fixture(scope="session")
def ensemble_model(training_bars: pd.DataFrame) -> TrainingResult:
    """A stacked ensemble evaluated walk-forward on two folds (beside its baselines)."""
    options = replace(FAST, algorithm="ensemble", evaluate=True, folds=2)
    return train_model(training_bars, options, created_at=TRAINED_AT)


@pytest.fixture(scope="session")
def per_regime_model(training_bars: pd.DataFrame) -> TrainingResult:
    """Per-regime XGBoost models, evaluated walk-forward on two folds."""
    options = replace(FAST, per_regime=True, evaluate=True, folds=2, min_regime_samples=150)
    return train_model(training_bars, options, created_at=TRAINED_AT)
