"""Optuna search on a SQLite study file: resume, duplicate reuse, pruning, reports."""

from __future__ import annotations

import itertools
from pathlib import Path

import optuna
import pandas as pd
import pytest

from tai_ingestion.samples import sample_path
from tai_optimizer.evaluation import EvaluationSettings, ObjectiveSettings
from tai_optimizer.search import (
    StudySettings,
    build_report,
    effective_jobs,
    finished_trials,
    fold_bounds,
    optuna_storage_url,
    run_study,
    split_holdout,
)
from tai_strategy.search_spaces import sma_cross_search_space

SETTINGS = EvaluationSettings(periods_per_year=6240.0)


def _frame() -> pd.DataFrame:
    return pd.read_csv(sample_path("EURUSD.csv"), index_col=0, parse_dates=True).iloc[:2000]


def test_ledger_urls_map_to_optuna_storage_urls(tmp_path: Path) -> None:
    assert optuna_storage_url("postgresql+psycopg://user:pw@db:5432/ledger") == (
        "postgresql+psycopg://user:pw@db:5432/ledger"
    )
    assert optuna_storage_url(f"sqlite+aiosqlite:///{tmp_path}/embedded.sqlite") == (
        f"sqlite:///{tmp_path}/optuna.sqlite"
    )
    with pytest.raises(ValueError, match="in-memory"):
        optuna_storage_url("sqlite+aiosqlite://")


def test_jobs_are_capped_at_the_cores() -> None:
    assert effective_jobs(10_000) <= 10_000
    assert effective_jobs(1) == 1
    assert effective_jobs(-1) == effective_jobs(10_000)


def test_folds_cover_the_selection_without_overlap() -> None:
    bounds = fold_bounds(1000, 3)
    assert bounds[0][0] == 0
    assert bounds[-1][1] == 1000
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(bounds))


def test_holdout_is_the_last_share_of_the_bars() -> None:
    frame = _frame()
    selection, holdout = split_holdout(frame, 0.25)
    assert len(holdout) == 500
    assert selection.index.max() < holdout.index.min()


def test_a_resumed_study_adds_only_the_missing_trials_and_reuses_finished_ones(
    tmp_path: Path,
) -> None:
    # Arrange: a study file beside an embedded ledger, run to 6 trials
    url = f"sqlite+aiosqlite:///{tmp_path}/embedded.sqlite"
    space = sma_cross_search_space(fast=(5, 20, 5), slow=(20, 60, 20))
    evaluated: list[tuple[int, dict[str, int]]] = []

    def run(trials: int) -> optuna.Study:
        return run_study(
            _frame(),
            space=space,
            settings=SETTINGS,
            objective=ObjectiveSettings(),
            study_settings=StudySettings(
                name="resume", storage_url=url, trials=trials, folds=2, startup_trials=3
            ),
            on_evaluated=lambda number, parameters: evaluated.append((number, parameters)),
        )

    first_count = finished_trials(run(6))
    first_numbers = {number for number, _ in evaluated}
    evaluated.clear()

    # Act: ask for 14 in total (the small grid has only 12 valid combinations)
    second = run(14)

    # Assert
    assert first_count == 6
    assert finished_trials(second) == 14
    assert not {number for number, _ in evaluated} & first_numbers
    distinct = [tuple(sorted(parameters.items())) for _, parameters in evaluated]
    assert len(distinct) == len(set(distinct))  # a parameter set is never evaluated twice
    duplicates = [trial for trial in second.trials if "duplicate_of" in trial.user_attrs]
    for trial in duplicates:
        original = second.trials[trial.user_attrs["duplicate_of"]]
        assert trial.params == original.params
        assert trial.value == original.value


def test_the_report_carries_deflated_sharpe_pbo_and_monte_carlo() -> None:
    # Arrange
    frame = _frame()
    space = sma_cross_search_space(fast=(3, 30, 1), slow=(20, 120, 2))
    study_settings = StudySettings(name="report", trials=20, folds=2)
    study = run_study(
        frame,
        space=space,
        settings=SETTINGS,
        objective=ObjectiveSettings(),
        study_settings=study_settings,
    )

    # Act
    report = build_report(
        study,
        frame,
        space=space,
        settings=SETTINGS,
        study_settings=study_settings,
        simulations=200,
    ).to_dict()

    # Assert
    assert 0.0 <= report["deflated_sharpe"]["deflated_sharpe"] <= 1.0
    assert report["pbo"] is not None
    assert 0.0 <= report["pbo"]["pbo"] <= 1.0
    assert report["out_of_sample"]["start"] > report["in_sample"]["end"]
    assert report["monte_carlo"]["returns"]["max_drawdown_pct"]["p95"] >= 0.0
    assert report["best_parameters"] == study.best_trial.params


def test_the_same_seed_reproduces_the_same_study() -> None:
    space = sma_cross_search_space()

    def best() -> dict[str, int]:
        study = run_study(
            _frame(),
            space=space,
            settings=SETTINGS,
            objective=ObjectiveSettings(),
            study_settings=StudySettings(name="seeded", trials=12, folds=2, seed=5),
        )
        return dict(study.best_trial.params)

    assert best() == best()
