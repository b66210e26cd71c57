"""Benchmark: Optuna trials per minute for a fixed sma_cross study on the bundled EURUSD bars.

Beside the study, in the same run, the baseline is one vectorised backtest over the same bars
(and the objective's own cost, its folds evaluated directly), so the optimiser's overhead
(sampling, pruning, storage round trips) reads straight off the table. Storages: in memory,
a SQLite file, and PostgreSQL from DATABASE_URL when it answers (a throwaway database).

Run: ``.venv/bin/python bench/optimizer_bench.py [--trials 60]``. Prints a table and writes
bench/results-optimizer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import make_url

from tai_optimizer.evaluation import EvaluationSettings, ObjectiveSettings, evaluate
from tai_optimizer.search import (
    StudySettings,
    effective_jobs,
    fold_bounds,
    run_study,
    split_holdout,
)
from tai_quant.metrics import infer_periods_per_year
from tai_store import create_database_if_missing, drop_database_if_exists
from tai_strategy.search_spaces import sma_cross_search_space

SAMPLE = Path(__file__).resolve().parents[1] / "services/ingestion/tai_ingestion/data/EURUSD.csv"
RESULTS = Path(__file__).resolve().parent / "results-optimizer.json"
SEED = 42
FOLDS = 4


def _baseline(frame: pd.DataFrame, settings: EvaluationSettings, repeats: int) -> dict[str, Any]:
    started = time.perf_counter()
    for _ in range(repeats):
        evaluate(frame, {"fast": 20, "slow": 100}, settings)
    backtest = (time.perf_counter() - started) / repeats
    selection, _ = split_holdout(frame, 0.25)
    started = time.perf_counter()
    for _ in range(repeats):
        for start, end in fold_bounds(len(selection), FOLDS):
            warm_up = min(100, start)
            evaluate(
                selection.iloc[start - warm_up : end],
                {"fast": 20, "slow": 100},
                settings,
                warm_up_bars=warm_up,
            )
    objective = (time.perf_counter() - started) / repeats
    return {
        "single_backtest_seconds": backtest,
        "backtests_per_minute": 60.0 / backtest,
        "objective_seconds": objective,
        "objective_evaluations_per_minute": 60.0 / objective,
    }


def _study(
    frame: pd.DataFrame,
    settings: EvaluationSettings,
    *,
    label: str,
    storage_url: str | None,
    trials: int,
    jobs: int,
) -> dict[str, Any]:
    study_settings = StudySettings(
        name=f"bench-{uuid.uuid4().hex[:8]}",
        storage_url=storage_url,
        trials=trials,
        seed=SEED,
        jobs=jobs,
        folds=FOLDS,
    )
    started = time.perf_counter()
    study = run_study(
        frame,
        space=sma_cross_search_space(),
        settings=settings,
        objective=ObjectiveSettings(),
        study_settings=study_settings,
    )
    seconds = time.perf_counter() - started
    states = [trial.state.name for trial in study.trials]
    return {
        "storage": label,
        "jobs": effective_jobs(jobs),
        "trials": len(states),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "seconds": seconds,
        "trials_per_minute": len(states) / seconds * 60.0,
        "best_value": study.best_value,
        "best_parameters": study.best_params,
    }


def _postgres_url() -> str | None:
    base = make_url(
        os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    )
    if base.get_backend_name() != "postgresql":
        return None
    url = base.set(
        drivername="postgresql+psycopg", database=f"tai_bench_{uuid.uuid4().hex[:12]}"
    ).render_as_string(hide_password=False)
    try:
        create_database_if_missing(url)
    except Exception as error:
        print(f"PostgreSQL unavailable ({error}); skipping its row")
        return None
    return url


def main() -> None:
    """Run the fixed study on each storage, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=60)
    arguments = parser.parse_args()
    frame = pd.read_csv(SAMPLE, index_col=0, parse_dates=True)
    settings = EvaluationSettings(periods_per_year=infer_periods_per_year(frame.index))
    baseline = _baseline(frame, settings, repeats=20)
    rows = [
        _study(frame, settings, label="memory", storage_url=None, trials=arguments.trials, jobs=1)
    ]
    if effective_jobs(-1) > 1:
        rows.append(
            _study(
                frame, settings, label="memory", storage_url=None, trials=arguments.trials, jobs=-1
            )
        )
    with tempfile.TemporaryDirectory() as directory:
        sqlite_url = f"sqlite+aiosqlite:///{directory}/ledger.sqlite"
        rows.append(
            _study(
                frame,
                settings,
                label="sqlite",
                storage_url=sqlite_url,
                trials=arguments.trials,
                jobs=1,
            )
        )
    postgres = _postgres_url()
    if postgres is not None:
        try:
            rows.append(
                _study(
                    frame,
                    settings,
                    label="postgresql",
                    storage_url=postgres,
                    trials=arguments.trials,
                    jobs=1,
                )
            )
        finally:
            drop_database_if_exists(postgres)
    print(
        f"\nsma_cross study on EURUSD ({len(frame)} hourly bars), {arguments.trials} trials, "
        f"TPE seed {SEED}, {FOLDS} folds\n"
    )
    print(f"{'baseline':<24}{'per minute':>14}{'seconds each':>16}")
    print(
        f"{'single backtest':<24}{baseline['backtests_per_minute']:>14,.0f}"
        f"{baseline['single_backtest_seconds']:>16.4f}"
    )
    print(
        f"{'objective (4 folds)':<24}{baseline['objective_evaluations_per_minute']:>14,.0f}"
        f"{baseline['objective_seconds']:>16.4f}\n"
    )
    print(f"{'storage':<12}{'jobs':>6}{'trials':>8}{'pruned':>8}{'seconds':>10}{'trials/min':>12}")
    for row in rows:
        print(
            f"{row['storage']:<12}{row['jobs']:>6}{row['trials']:>8}{row['pruned']:>8}"
            f"{row['seconds']:>10.2f}{row['trials_per_minute']:>12,.0f}"
        )
    results = {
        "study": {
            "strategy": "sma_cross",
            "data": "EURUSD hourly (bundled)",
            "bars": len(frame),
            "trials": arguments.trials,
            "seed": SEED,
            "folds": FOLDS,
        },
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "baseline": baseline,
        "studies": rows,
    }
    RESULTS.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
