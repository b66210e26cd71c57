"""Benchmark: the ML features and a single prediction, incremental vs batch, in one run.

Measures, on the bundled hourly EURUSD bars:

* the incremental feature update (``IncrementalFeatures.update``), microseconds per bar;
* the batch computation of the same features over the whole series (amortised per bar), and
  the batch recomputation of the shortest window that yields the latest row, per new bar
  (what a service without incremental features would pay on every bar);
* a single prediction (calibrated XGBoost, one row), microseconds per call, and the whole
  per-bar path of the inference engine (features, regime filter, model, drift);
* each model kind — single XGBoost, the stacked ensemble (XGBoost + LightGBM + meta-learner),
  per-regime XGBoost — its training time (with its walk-forward evaluation and baselines, as
  ``trading-ai train`` runs it) and one prediction's time, with ratios to the single model
  measured in the same run.

Run: ``.venv/bin/python bench/ml_bench.py [--bars 5000] [--repeats 3] [--only models]``.
Prints a table and writes bench/results-ml.json. Batch and incremental features are checked
to agree (1e-9).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tai_events.market import BarClosed, Timeframe
from tai_inference.engine import InferenceEngine
from tai_inference.model import ServingModel
from tai_inference.regimes import REGIMES
from tai_inference.training import TrainingOptions, train_model
from tai_quant.features import (
    DEFAULT_FEATURES,
    IncrementalFeatures,
    compute_features,
    feature_bars,
    normalise_ohlcv,
)

SAMPLE = Path(__file__).resolve().parents[1] / "services/ingestion/tai_ingestion/data/EURUSD.csv"
RESULTS = Path(__file__).resolve().parent / "results-ml.json"


def _best_seconds(action: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def _bar_events(bars: pd.DataFrame) -> list[BarClosed]:
    return [
        BarClosed(
            symbol="EURUSD",
            timeframe=Timeframe.H1,
            opened_at=bar.opened_at,
            closed_at=bar.opened_at + Timeframe.H1.duration,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            source="bench",
        )
        for bar in feature_bars(bars)
    ]


def run(bars_count: int, repeats: int, prediction_calls: int) -> dict[str, Any]:
    """Run every measurement and return the results."""
    bars = normalise_ohlcv(pd.read_csv(SAMPLE, index_col=0, parse_dates=True)).iloc[:bars_count]
    count = len(bars)
    stream = list(feature_bars(bars))

    def incremental() -> list[list[float] | None]:
        engine = IncrementalFeatures()
        return [engine.update(bar) for bar in stream]

    incremental_seconds = _best_seconds(incremental, repeats)
    batch_seconds = _best_seconds(lambda: compute_features(bars), repeats)

    # Agreement check (the unit tests prove it; the bench refuses to time diverging code).
    warm = DEFAULT_FEATURES.warmup_period - 1
    streamed = np.array([row for row in incremental()[warm:] if row is not None])
    batch = compute_features(bars).to_numpy()[warm:]
    max_difference = float(np.max(np.abs(streamed - batch)))
    if max_difference > 1e-9:
        raise AssertionError(f"batch and incremental features differ by {max_difference}")

    window = 3 * DEFAULT_FEATURES.warmup_period
    tail_starts = range(count - min(200, count - window), count)
    recompute_seconds = _best_seconds(
        lambda: [compute_features(bars.iloc[end - window : end]) for end in tail_starts], 1
    ) / len(tail_starts)

    training = bars.iloc[: min(count, 3000)]
    result = train_model(
        training,
        TrainingOptions(evaluate=False, max_rounds=100, early_stopping_rounds=15),
        created_at=datetime.now(UTC),
    )
    model = ServingModel.from_record(result.record)
    features = compute_features(bars).to_numpy()[warm:]
    regimes = np.full((features.shape[0], len(REGIMES)), 1.0 / len(REGIMES))
    regimes[:, 0] = 0.5
    rows = np.hstack([features, regimes])
    model.regime_policy = dict.fromkeys(REGIMES, "model")  # time the model, never the prior

    def predictions() -> None:
        for index in range(prediction_calls):
            model.predict(rows[index % rows.shape[0]], regimes[0])

    prediction_seconds = _best_seconds(predictions, repeats) / prediction_calls

    events = _bar_events(bars.iloc[: min(count, 1500)])

    def engine_path() -> None:
        engine = InferenceEngine()
        engine.set_model("EURUSD", model)
        for event in events:
            engine.on_bar(event)

    engine_seconds = _best_seconds(engine_path, repeats)
    return {
        "bars": count,
        "features": len(DEFAULT_FEATURES.names),
        "feature_set_version": DEFAULT_FEATURES.version,
        "max_abs_difference_batch_vs_incremental": max_difference,
        "incremental_feature_update_us_per_bar": incremental_seconds / count * 1e6,
        "batch_features_whole_series_ms": batch_seconds * 1e3,
        "batch_features_amortised_us_per_bar": batch_seconds / count * 1e6,
        "batch_recompute_window_bars": window,
        "batch_recompute_us_per_new_bar": recompute_seconds * 1e6,
        "single_prediction_us_per_call": prediction_seconds * 1e6,
        "engine_on_bar_us_per_bar": engine_seconds / len(events) * 1e6,
        "model_algorithm": model.algorithm,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


MODEL_KINDS = (
    ("xgboost", TrainingOptions(algorithm="xgboost")),
    ("ensemble", TrainingOptions(algorithm="ensemble")),
    ("per_regime_xgboost", TrainingOptions(algorithm="xgboost", per_regime=True)),
)
"""The model kinds ``trading-ai train`` offers, the single model first (the baseline)."""


def run_models(bars_count: int, repeats: int, prediction_calls: int) -> dict[str, Any]:
    """Train each model kind once (walk-forward included) and time one prediction."""
    bars = normalise_ohlcv(pd.read_csv(SAMPLE, index_col=0, parse_dates=True)).iloc[:bars_count]
    warm = DEFAULT_FEATURES.warmup_period - 1
    features = compute_features(bars).to_numpy()[warm:]
    kinds: dict[str, Any] = {}
    # Import and initialise the libraries once, outside the timings (the first fit pays it).
    for _, options in MODEL_KINDS:
        warm_options = replace(options, evaluate=False, max_rounds=5, min_regime_samples=50)
        train_model(bars.iloc[:800], warm_options, created_at=datetime.now(UTC))
    for name, options in MODEL_KINDS:
        folds = 2 if bars_count < 2000 else options.folds
        started = time.perf_counter()
        result = train_model(bars, replace(options, folds=folds), created_at=datetime.now(UTC))
        training_seconds = time.perf_counter() - started
        model = ServingModel.from_record(result.record)
        model.regime_policy = dict.fromkeys(REGIMES, "model")  # time the model, not the prior
        regimes = np.zeros((features.shape[0], len(REGIMES)))
        regimes[np.arange(features.shape[0]), np.arange(features.shape[0]) % len(REGIMES)] = 1.0
        rows = np.hstack([features, regimes])

        def predictions(model: ServingModel = model, rows: np.ndarray = rows) -> None:
            for index in range(prediction_calls):
                row = rows[index % rows.shape[0]]
                model.predict(row, row[-len(REGIMES) :])

        walk_forward = result.metrics.get("walk_forward", {})
        kinds[name] = {
            "training_seconds": training_seconds,
            "prediction_us_per_call": _best_seconds(predictions, repeats) / prediction_calls * 1e6,
            "artifact_format": result.record.artifact_format,
            "artifact_bytes": len(result.record.artifact),
            "walk_forward_log_loss": walk_forward.get("log_loss"),
            "walk_forward_trades_sharpe": walk_forward.get("trading", {}).get("sharpe"),
        }
    single = kinds["xgboost"]
    for values in kinds.values():
        values["training_vs_single"] = values["training_seconds"] / single["training_seconds"]
        values["prediction_vs_single"] = (
            values["prediction_us_per_call"] / single["prediction_us_per_call"]
        )
    return {"model_bars": len(bars), "models": kinds}


def print_models(results: dict[str, Any]) -> None:
    """Print each model kind's training and prediction time beside the single model's."""
    print(f"model kinds on {results['model_bars']} bars (training includes walk-forward):")
    print(f"  {'kind':<20} {'train s':>9} {'x single':>9} {'predict µs':>11} {'x single':>9}")
    for name, values in results["models"].items():
        print(
            f"  {name:<20} {values['training_seconds']:>9.2f} "
            f"{values['training_vs_single']:>9.2f} {values['prediction_us_per_call']:>11.1f} "
            f"{values['prediction_vs_single']:>9.2f}"
        )


def print_table(results: dict[str, Any]) -> None:
    """Print the measurements as a table."""
    rows = [
        ("incremental feature update", results["incremental_feature_update_us_per_bar"], "µs/bar"),
        ("batch features, whole series", results["batch_features_amortised_us_per_bar"], "µs/bar"),
        (
            f"batch recompute of {results['batch_recompute_window_bars']} bars per new bar",
            results["batch_recompute_us_per_new_bar"],
            "µs/bar",
        ),
        ("single prediction (calibrated)", results["single_prediction_us_per_call"], "µs/call"),
        ("engine: bar -> prediction (all)", results["engine_on_bar_us_per_bar"], "µs/bar"),
    ]
    print(
        f"{results['features']} features, {results['bars']} bars, "
        f"max |batch - incremental| = {results['max_abs_difference_batch_vs_incremental']:.2e}"
    )
    width = max(len(name) for name, _, _ in rows)
    for name, value, unit in rows:
        print(f"  {name:<{width}}  {value:>12,.1f} {unit}")


def main() -> None:
    """Parse the arguments, run the benchmark, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prediction-calls", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--only", choices=("features", "models"), help="run one part (the file keeps the other)"
    )
    arguments = parser.parse_args()
    results: dict[str, Any] = (
        json.loads(arguments.output.read_text(encoding="utf-8"))
        if arguments.only and arguments.output.exists()
        else {}
    )
    if arguments.only != "models":
        results.update(run(arguments.bars, arguments.repeats, arguments.prediction_calls))
        print_table(results)
    if arguments.only != "features":
        results.update(
            run_models(min(arguments.bars, 3000), arguments.repeats, arguments.prediction_calls)
        )
        print_models(results)
    arguments.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
