"""Optuna parameter search: seeded TPE, fold-by-fold pruning, resumable shared studies.

The objective is the mean penalised Sharpe over consecutive validation folds of the selection
data (each fold is reported, so a median pruner stops hopeless trials early); the last
``holdout_fraction`` of the bars is never shown to the study and gives the out-of-sample result.

Studies live in PostgreSQL (optuna's RDBStorage on ``DATABASE_URL``, in its own ``optuna``
schema so optuna's Alembic table never meets the ledger's) or a SQLite file beside an embedded
ledger. A study killed mid-run resumes where it stopped: finished trials are kept and counted,
a trial that was running when the process died is failed by the heartbeat and retried once,
and a parameter set that already finished is never evaluated again. Any number of worker
processes may share one study by name.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import psycopg
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
from psycopg import sql
from sqlalchemy.engine import make_url

from tai_optimizer.evaluation import (
    Evaluation,
    EvaluationSettings,
    ObjectiveSettings,
    evaluate,
    penalised_score,
)
from tai_optimizer.montecarlo import MonteCarloMethod, simulate_returns, simulate_trades
from tai_optimizer.overfitting import (
    deflated_sharpe_ratio,
    per_period_sharpe,
    probability_of_backtest_overfitting,
)
from tai_optimizer.walkforward import suggest
from tai_strategy.search_spaces import SearchSpace

OPTUNA_SCHEMA = "optuna"
SCHEMA_LOCK_KEY = 0x0A7_57D1
HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 15
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class StudySettings:
    """One study: its name, where it is stored, how many trials it should reach."""

    name: str
    storage_url: str | None = None
    """A ledger-style database URL; None keeps the study in memory."""
    trials: int = 100
    """Finished (complete or pruned) trials the study should hold, across every worker."""
    seed: int = 42
    jobs: int = 1
    """Threads in this process; capped at the cores available (-1 = all cores)."""
    folds: int = 4
    holdout_fraction: float = 0.25
    startup_trials: int = 10
    pruning: bool = True
    worker: int = 0
    """Index of this worker among those sharing the study (varies its sampler seed)."""

    def __post_init__(self) -> None:
        if self.trials < 1 or self.folds < 1:
            raise ValueError("trials and folds must be at least 1")
        if not 0 <= self.holdout_fraction < 1:
            raise ValueError("holdout_fraction must be within [0, 1)")


def effective_jobs(requested: int) -> int:
    """Return ``requested`` threads capped at the cores (-1 or 0 = all cores)."""
    cores = os.cpu_count() or 1
    return cores if requested <= 0 else min(requested, cores)


def optuna_storage_url(database_url: str) -> str:
    """Return the synchronous SQLAlchemy URL optuna should use for a ledger URL.

    PostgreSQL keeps psycopg 3; an embedded SQLite ledger gets a sibling ``optuna.sqlite``
    file (optuna's own Alembic table must not share the ledger's).
    """
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("an in-memory SQLite ledger cannot hold a resumable study")
        sibling = Path(url.database).with_name("optuna.sqlite")
        return f"sqlite:///{sibling}"
    raise ValueError(f"unsupported database for optuna studies: {backend}")


def _maintenance(url: str) -> psycopg.Connection[Any]:
    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
        autocommit=True,
    )


def make_storage(database_url: str) -> RDBStorage:
    """Return optuna's RDBStorage for a ledger URL, with heartbeats and one retry."""
    url = optuna_storage_url(database_url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if not url.startswith("postgresql"):
        return _rdb_storage(url, engine_kwargs)
    engine_kwargs["connect_args"] = {"options": f"-c search_path={OPTUNA_SCHEMA}"}
    with _maintenance(url) as connection:
        # Workers starting together would race to create optuna's tables and enum types.
        connection.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        try:
            connection.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(OPTUNA_SCHEMA))
            )
            return _rdb_storage(url, engine_kwargs)
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))


def _rdb_storage(url: str, engine_kwargs: dict[str, Any]) -> RDBStorage:
    with warnings.catch_warnings():
        # Heartbeats are marked experimental; they are what fails a killed worker's trial.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


def split_holdout(frame: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (selection, holdout): the holdout is the last ``fraction`` of the bars."""
    holdout_bars = int(len(frame) * fraction)
    if holdout_bars == 0:
        return frame, frame.iloc[0:0]
    return frame.iloc[:-holdout_bars], frame.iloc[-holdout_bars:]


def fold_bounds(bar_count: int, folds: int) -> list[tuple[int, int]]:
    """Return (start, end) positions of ``folds`` consecutive, equal validation folds."""
    edges = np.linspace(0, bar_count, folds + 1).astype(int)
    return [(int(edges[index]), int(edges[index + 1])) for index in range(folds)]


def finished_trials(study: optuna.Study) -> int:
    """Return how many trials of the study are complete or pruned."""
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


@dataclass
class FoldObjective:
    """Optuna objective: penalised Sharpe per fold, reported after each fold for pruning."""

    selection: pd.DataFrame
    space: SearchSpace
    settings: EvaluationSettings
    objective: ObjectiveSettings
    folds: int
    worker: int = 0
    on_evaluated: Callable[[int, dict[str, Any]], None] | None = None
    """Called with (trial number, parameters) before each real evaluation (audit, tests)."""
    _bounds: list[tuple[int, int]] = field(init=False)

    def __post_init__(self) -> None:
        self._bounds = fold_bounds(len(self.selection), self.folds)

    def __call__(self, trial: optuna.Trial) -> float:
        """Score the trial's parameters fold by fold."""
        parameters = suggest(trial, self.space)
        trial.set_user_attr("worker", self.worker)
        shortest = min(end - start for start, end in self._bounds)
        if not self.space.is_valid(parameters) or self.space.warm_up(parameters) >= shortest - 1:
            raise optuna.TrialPruned("invalid combination for this space and data")
        earlier = _finished_with(trial.study, parameters)
        if earlier is not None:
            # The same parameters already finished: reuse the result, never recompute it.
            trial.set_user_attr("duplicate_of", earlier.number)
            trial.set_user_attr("per_period_sharpe", earlier.user_attrs.get("per_period_sharpe"))
            return float(earlier.value if earlier.value is not None else -1e9)
        if self.on_evaluated is not None:
            self.on_evaluated(trial.number, parameters)
        scores: list[float] = []
        returns: list[pd.Series] = []
        for step, (start, end) in enumerate(self._bounds):
            warm_up = min(self.space.warm_up(parameters), start)
            fold = self.selection.iloc[start - warm_up : end]
            evaluation = evaluate(fold, parameters, self.settings, warm_up_bars=warm_up)
            scores.append(penalised_score(evaluation, self.objective))
            returns.append(evaluation.returns)
            trial.report(float(np.mean(scores)), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {step + 1}")
        trial.set_user_attr(
            "per_period_sharpe", per_period_sharpe(pd.concat(returns).to_numpy(np.float64))
        )
        return float(np.mean(scores))


def _finished_with(
    study: optuna.Study, parameters: dict[str, Any]
) -> optuna.trial.FrozenTrial | None:
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.params == parameters:
            return trial
    return None


def open_study(
    settings: StudySettings,
    *,
    finished: int = 0,
    storage: optuna.storages.BaseStorage | None = None,
) -> optuna.Study:
    """Create or load the study; the sampler seed depends on the worker and on progress.

    A resumed worker must not replay its sampler's random start from the beginning (it
    would propose the parameters of trials that already finished), hence ``finished``.
    """
    if storage is None and settings.storage_url:
        storage = make_storage(settings.storage_url)
    seed = settings.seed + 1_000_003 * settings.worker + 7_919 * finished
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials, n_warmup_steps=1)
        if settings.pruning
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        study_name=settings.name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.startup_trials),
        pruner=pruner,
        load_if_exists=True,
    )


def run_study(
    frame: pd.DataFrame,
    *,
    space: SearchSpace,
    settings: EvaluationSettings,
    objective: ObjectiveSettings,
    study_settings: StudySettings,
    progress: Callable[[int, int], None] | None = None,
    on_evaluated: Callable[[int, dict[str, Any]], None] | None = None,
) -> optuna.Study:
    """Run (or resume) the study until it holds ``study_settings.trials`` finished trials."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    selection, _ = split_holdout(frame, study_settings.holdout_fraction)
    storage = make_storage(study_settings.storage_url) if study_settings.storage_url else None
    probe = open_study(study_settings, storage=storage)
    done = finished_trials(probe)
    study = open_study(study_settings, finished=done, storage=storage) if done else probe
    remaining = study_settings.trials - done
    if remaining <= 0:
        return study
    target = study_settings.trials

    def report(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        if progress is not None:
            progress(min(finished_trials(study), target), target)

    study.optimize(
        FoldObjective(
            selection,
            space,
            settings,
            objective,
            study_settings.folds,
            worker=study_settings.worker,
            on_evaluated=on_evaluated,
        ),
        n_trials=remaining,
        n_jobs=effective_jobs(study_settings.jobs),
        callbacks=[MaxTrialsCallback(target, states=FINISHED_STATES), report],
        gc_after_trial=False,
    )
    return study


@dataclass(frozen=True)
class OptimisationReport:
    """Everything an optimisation produced, with its overfitting and robustness checks."""

    study_name: str
    best_parameters: dict[str, Any]
    best_value: float
    in_sample: Evaluation
    out_of_sample: Evaluation | None
    trials: list[dict[str, Any]]
    deflated_sharpe: dict[str, Any]
    pbo: dict[str, Any] | None
    monte_carlo: dict[str, Any]

    @property
    def monte_carlo_drawdown_95(self) -> float:
        """Return the 95th percentile of Monte Carlo maximum drawdown (%)."""
        return float(self.monte_carlo["returns"]["max_drawdown_pct"]["p95"])

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready report."""
        return {
            "study": self.study_name,
            "best_parameters": self.best_parameters,
            "best_value": self.best_value,
            "in_sample": self.in_sample.summary(),
            "out_of_sample": self.out_of_sample.summary() if self.out_of_sample else None,
            "trials": self.trials,
            "deflated_sharpe": self.deflated_sharpe,
            "pbo": self.pbo,
            "monte_carlo": self.monte_carlo,
        }


def build_report(
    study: optuna.Study,
    frame: pd.DataFrame,
    *,
    space: SearchSpace,
    settings: EvaluationSettings,
    study_settings: StudySettings,
    pbo_partitions: int = 16,
    max_pbo_trials: int = 64,
    simulations: int = 1000,
) -> OptimisationReport:
    """Evaluate the best trial in and out of sample and compute DSR, PBO and Monte Carlo."""
    completed = [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if trial.value is not None
    ]
    if not completed:
        raise ValueError(f"study {study.study_name!r} has no completed trial")
    best = max(completed, key=lambda trial: (float(trial.value or 0.0), -trial.number))
    best_parameters = dict(best.params)
    selection, holdout = split_holdout(frame, study_settings.holdout_fraction)
    in_sample = evaluate(selection, best_parameters, settings)
    out_of_sample: Evaluation | None = None
    if len(holdout) >= 2:
        warm_up = min(space.warm_up(best_parameters), len(selection))
        out_of_sample = evaluate(
            frame.iloc[len(selection) - warm_up :],
            best_parameters,
            settings,
            warm_up_bars=warm_up,
        )
    distinct = _distinct(completed)
    sharpes = np.array(
        [float(trial.user_attrs.get("per_period_sharpe") or math.nan) for trial in distinct]
    )
    deflated = deflated_sharpe_ratio(in_sample.returns.to_numpy(np.float64), sharpes).to_dict()
    pbo = _pbo(distinct, selection, settings, pbo_partitions, max_pbo_trials)
    scored = out_of_sample or in_sample
    monte_carlo: dict[str, Any] = {
        "returns": simulate_returns(
            scored.returns.to_numpy(np.float64),
            initial_equity=settings.cash,
            simulations=simulations,
            block_size=24 if scored.bars > 48 else 1,
            seed=study_settings.seed,
        ).summary()
    }
    if scored.trades:
        monte_carlo["trades"] = simulate_trades(
            np.asarray(scored.trade_pnls),
            initial_equity=settings.cash,
            method=MonteCarloMethod.TRADE_BOOTSTRAP,
            simulations=simulations,
            seed=study_settings.seed,
        ).summary()
    return OptimisationReport(
        study_name=study.study_name,
        best_parameters=best_parameters,
        best_value=float(best.value or 0.0),
        in_sample=in_sample,
        out_of_sample=out_of_sample,
        trials=[
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "parameters": trial.params,
                "worker": trial.user_attrs.get("worker"),
            }
            for trial in study.get_trials(deepcopy=False)
        ],
        deflated_sharpe=deflated,
        pbo=pbo,
        monte_carlo=monte_carlo,
    )


def _distinct(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    seen: set[tuple[tuple[str, Any], ...]] = set()
    distinct: list[optuna.trial.FrozenTrial] = []
    for trial in sorted(trials, key=lambda item: item.number):
        key = tuple(sorted(trial.params.items()))
        if key not in seen:
            seen.add(key)
            distinct.append(trial)
    return distinct


def _pbo(
    trials: list[optuna.trial.FrozenTrial],
    selection: pd.DataFrame,
    settings: EvaluationSettings,
    partitions: int,
    max_trials: int,
) -> dict[str, Any] | None:
    if len(trials) < 2 or len(selection) < 2 * partitions + 1:
        return None
    if len(trials) > max_trials:
        # An even spread over the study's history, not just its winners: CSCV must see the
        # configurations that lost too.
        picks = np.linspace(0, len(trials) - 1, max_trials).astype(int)
        trials = [trials[index] for index in picks]
    columns = [
        evaluate(selection, dict(trial.params), settings).returns.to_numpy(np.float64)
        for trial in trials
    ]
    matrix = np.column_stack(columns)
    return probability_of_backtest_overfitting(matrix, partitions).to_dict()
