"""Start backtests from the console or the API and keep their reports.

The gateway may not import the optimizer (services stay independent), so a backtest runs as
``trading-ai backtest ... --json <file>`` in a subprocess: the same command a researcher
runs, isolated from the gateway's event loop and memory. Each run keeps two files in the
research directory: ``<id>.status.json`` (request, state, summary) and the report ``<id>.json``.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import uuid
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from tai_core.clock import Clock
from tai_telemetry.logging import get_logger

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
MAXIMUM_OUTPUT = 4000


class BacktestState(StrEnum):
    """Where a run is."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BacktestRequestError(ValueError):
    """A backtest request is invalid; the message says which field."""


class BacktestBusyError(RuntimeError):
    """Too many backtests are running."""


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    """What to backtest: a strategy, a data file of the research data directory, costs."""

    strategy: str
    data_file: str
    cash: float = 100_000.0
    commission: float = 0.0002
    parameters: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class BacktestRun:
    """A run and its outcome (``summary`` holds the headline metrics once it succeeded)."""

    run_id: str
    state: BacktestState
    request: dict[str, Any]
    requested_by: str
    started_at: str
    finished_at: str | None = None
    error: str | None = None
    summary: dict[str, Any] | None = None


class BacktestRunner:
    """Run ``trading-ai backtest`` subprocesses and keep their requests, states and reports."""

    def __init__(
        self,
        directory: Path,
        data_directory: Path | None,
        clock: Clock,
        *,
        max_running: int = 2,
        timeout_seconds: float = 600.0,
        executable: str | None = None,
    ) -> None:
        self.directory = directory
        self.data_directory = data_directory
        self._clock = clock
        self._max_running = max_running
        self._timeout = timeout_seconds
        self._executable = executable
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._logger = get_logger("tai_gateway.backtests")

    def data_files(self) -> list[str]:
        """Return the CSV files a backtest may use (names only, never paths)."""
        if self.data_directory is None or not self.data_directory.is_dir():
            return []
        return sorted(path.name for path in self.data_directory.glob("*.csv") if path.is_file())

    def validate(self, request: BacktestRequest) -> Path:
        """Return the data file's path or raise BacktestRequestError."""
        if not NAME_PATTERN.fullmatch(request.strategy):
            raise BacktestRequestError("strategy must be a lower-case name, e.g. sma_cross")
        if request.data_file not in self.data_files():
            raise BacktestRequestError(
                f"data_file must be one of {self.data_files()}"
                if self.data_files()
                else "no research data directory is configured (GATEWAY_RESEARCH_DATA_DIRECTORY)"
            )
        if not 0 < request.cash <= 1e12:
            raise BacktestRequestError("cash must be positive")
        if not 0 <= request.commission < 0.1:
            raise BacktestRequestError("commission must be a fraction in [0, 0.1)")
        for key, _value in request.parameters:
            if not NAME_PATTERN.fullmatch(key):
                raise BacktestRequestError(f"parameter name {key!r} is not a lower-case name")
        if self.data_directory is None:  # unreachable: data_files() was not empty
            raise BacktestRequestError("no research data directory is configured")
        return self.data_directory / request.data_file

    def _command(self, request: BacktestRequest, data: Path, report: Path) -> list[str]:
        executable = (
            self._executable
            or shutil.which("trading-ai")
            or str(Path(sys.executable).with_name("trading-ai"))
        )
        command = [
            executable,
            "backtest",
            "--strategy",
            request.strategy,
            "--data",
            str(data),
            "--cash",
            repr(request.cash),
            "--commission",
            repr(request.commission),
            "--json",
            str(report),
        ]
        for key, value in request.parameters:
            command += ["--param", f"{key}={value:g}"]
        return command

    async def start(self, request: BacktestRequest, requested_by: str) -> BacktestRun:
        """Validate and launch a run; return it in the RUNNING state."""
        data = self.validate(request)
        running = [task for task in self._tasks.values() if not task.done()]
        if len(running) >= self._max_running:
            raise BacktestBusyError(f"{len(running)} backtests are running; try again later")
        self.directory.mkdir(parents=True, exist_ok=True)
        run = BacktestRun(
            run_id=uuid.uuid4().hex,
            state=BacktestState.RUNNING,
            request=asdict(request),
            requested_by=requested_by,
            started_at=self._clock.now().isoformat(),
        )
        self._write_status(run)
        command = self._command(request, data, self._report_path(run.run_id))
        self._tasks[run.run_id] = asyncio.create_task(
            self._run(run, command), name=f"backtest-{run.run_id}"
        )
        self._logger.info("backtest_started", run_id=run.run_id, strategy=request.strategy)
        return run

    async def wait(self, run_id: str) -> BacktestRun | None:
        """Wait for a run started by this runner to finish; return its final state."""
        task = self._tasks.get(run_id)
        if task is not None:
            await task
        return self.get(run_id)

    async def _run(self, run: BacktestRun, command: list[str]) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            try:
                stdout, stderr = await asyncio.wait_for(process.communicate(), self._timeout)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise
            if process.returncode != 0:
                message = (stderr or stdout).decode("utf-8", errors="replace")[-MAXIMUM_OUTPUT:]
                self._finish(run, BacktestState.FAILED, error=message.strip() or "failed")
                return
            self._finish(run, BacktestState.SUCCEEDED, summary=_summary(self.report(run.run_id)))
        except Exception as error:
            self._logger.exception("backtest_failed", run_id=run.run_id)
            self._finish(run, BacktestState.FAILED, error=f"{type(error).__name__}: {error}")

    def _finish(
        self,
        run: BacktestRun,
        state: BacktestState,
        *,
        error: str | None = None,
        summary: dict[str, Any] | None = None,
    ) -> None:
        self._write_status(
            BacktestRun(
                run_id=run.run_id,
                state=state,
                request=run.request,
                requested_by=run.requested_by,
                started_at=run.started_at,
                finished_at=self._clock.now().isoformat(),
                error=error,
                summary=summary,
            )
        )

    def _status_path(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.status.json"

    def _report_path(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.json"

    def _write_status(self, run: BacktestRun) -> None:
        path = self._status_path(run.run_id)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(run), default=str), encoding="utf-8")
        temporary.replace(path)  # atomic: readers never see half a file

    def get(self, run_id: str) -> BacktestRun | None:
        """Return a run's status, or None when unknown."""
        if not RUN_ID_PATTERN.fullmatch(run_id):
            return None
        path = self._status_path(run_id)
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        data["state"] = BacktestState(data["state"])
        return BacktestRun(**data)

    def report(self, run_id: str) -> dict[str, Any] | None:
        """Return a finished run's full JSON report, or None."""
        if not RUN_ID_PATTERN.fullmatch(run_id):
            return None
        path = self._report_path(run_id)
        if not path.is_file():
            return None
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded

    def list(self, limit: int = 100) -> list[BacktestRun]:
        """Return the newest runs first."""
        if not self.directory.is_dir():
            return []
        runs = []
        for path in self.directory.glob("*.status.json"):
            run = self.get(path.name.removesuffix(".status.json"))
            if run is not None:
                runs.append(run)
        runs.sort(key=lambda run: run.started_at, reverse=True)
        return runs[:limit]


def _summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    keys = ("final_equity", "return_pct", "sharpe", "max_drawdown_pct", "trades", "win_rate_pct")
    return {key: report.get(key) for key in keys}
