"""Optuna studies in PostgreSQL: a SIGKILLed study resumes without repeating finished trials,
and several worker processes share one study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tai_optimizer.search import FINISHED_STATES, make_storage

pytestmark = pytest.mark.integration

TARGET_TRIALS = 24
KILL_AFTER = 8
DEADLINE_SECONDS = 240

WORKER_SCRIPT = """
import json, sys
import pandas as pd
from tai_ingestion.samples import sample_path
from tai_optimizer.evaluation import EvaluationSettings, ObjectiveSettings
from tai_optimizer.search import StudySettings, run_study
from tai_strategy.search_spaces import sma_cross_search_space

url, name, log = sys.argv[1], sys.argv[2], sys.argv[5]
trials, worker = int(sys.argv[3]), int(sys.argv[4])
frame = pd.read_csv(sample_path("EURUSD.csv"), index_col=0, parse_dates=True).iloc[:3000]

def record(number, parameters):
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"number": number, "parameters": parameters}) + "\\n")

run_study(
    frame,
    space=sma_cross_search_space(),
    settings=EvaluationSettings(periods_per_year=6240.0),
    objective=ObjectiveSettings(),
    study_settings=StudySettings(
        name=name, storage_url=url, trials=trials, worker=worker, folds=4, startup_trials=5
    ),
    on_evaluated=record,
)
"""


def _start_worker(
    script: Path, url: str, name: str, trials: int, worker: int, log: Path
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(script), url, name, str(trials), str(worker), str(log)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _finished(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name=name, storage=make_storage(url))
    except KeyError:
        return []  # the worker has not created the study yet
    return study.get_trials(deepcopy=False, states=FINISHED_STATES)


def _logged(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]


def test_killed_study_resumes_without_repeating_finished_trials(
    tmp_path: Path, study_database_url: str
) -> None:
    # Arrange: a worker that we SIGKILL once the database holds KILL_AFTER finished trials
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT, encoding="utf-8")
    first_log, second_log = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    name = "resume-after-kill"
    worker = _start_worker(script, study_database_url, name, TARGET_TRIALS, 0, first_log)
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        while len(_finished(study_database_url, name)) < KILL_AFTER:
            assert worker.poll() is None, "the worker ended before it could be killed"
            assert time.monotonic() < deadline, "no progress in the study"
            time.sleep(0.1)  # polling the database's trial count, not waiting for time
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.wait(timeout=60)
    assert worker.returncode == -signal.SIGKILL
    before = {trial.number: trial for trial in _finished(study_database_url, name)}
    assert KILL_AFTER <= len(before) < TARGET_TRIALS

    # Act: resume the same study in a new process
    resumed = _start_worker(script, study_database_url, name, TARGET_TRIALS, 0, second_log)
    assert resumed.wait(timeout=DEADLINE_SECONDS) == 0

    # Assert
    after = {trial.number: trial for trial in _finished(study_database_url, name)}
    assert len(after) == TARGET_TRIALS
    for number, trial in before.items():
        assert after[number].value == trial.value
        assert after[number].params == trial.params
    evaluated_again = _logged(second_log)
    assert not {entry["number"] for entry in evaluated_again} & set(before)
    finished_parameters = [
        trial.params for trial in before.values() if trial.state is TrialState.COMPLETE
    ]
    assert not [entry for entry in evaluated_again if entry["parameters"] in finished_parameters]
    assert len(evaluated_again) <= TARGET_TRIALS - len(before)


def test_two_worker_processes_share_one_study(tmp_path: Path, study_database_url: str) -> None:
    # Arrange
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT, encoding="utf-8")
    name = "shared"

    # Act
    workers = [
        _start_worker(
            script, study_database_url, name, TARGET_TRIALS, index, tmp_path / f"{index}.jsonl"
        )
        for index in range(2)
    ]
    codes = [worker.wait(timeout=DEADLINE_SECONDS) for worker in workers]

    # Assert
    assert codes == [0, 0]
    finished = _finished(study_database_url, name)
    # Each worker checks the shared count before a trial, so at most one extra may start.
    assert TARGET_TRIALS <= len(finished) <= TARGET_TRIALS + 1
    assert {trial.user_attrs["worker"] for trial in finished} == {0, 1}
    numbers = [trial.number for trial in finished]
    assert len(numbers) == len(set(numbers))
