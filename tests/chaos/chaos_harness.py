"""One chaos run: the services as processes on the private servers, a fault mid-stream, the ledger.

A run replays the first ``bars`` bars of the bundled EURUSD sample through ingestion, strategy,
risk and execution (each ``trading-ai service <name>``), injects one fault once the stream is
well under way, heals it, waits until every queue is empty and the outbox is flushed, and
returns the final ledger with what the fault cost (redeliveries, recovery time).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sqlalchemy import create_engine, text

from tai_core.signing import generate_private_key_pem, public_key_pem
from tai_events.topics import DEAD_LETTER_QUEUE
from tai_store.database import create_database_if_missing, drop_database_if_exists
from tests.chaos.chaos_servers import ChaosServers
from tests.e2e.conftest import ServiceProcesses
from tests.fuzz.pipeline_harness import sample_slice

CONSUMERS = ("risk", "execution", "strategy")
SERVICES = ("ingestion", *CONSUMERS)
FAULT_AT_FRACTION = 0.4
"""Inject the fault once the slowest consumer has handled this share of the bars."""
POLL_SECONDS = 0.2
DEFAULT_BARS_PER_SECOND = 25.0
"""Replay pace: slow enough that each bar's consequences settle before the next bar."""

_METRIC_LINE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


class Fault(StrEnum):
    """The faults the suite injects, one per run."""

    NONE = "none (baseline)"
    KILL_INGESTION = "SIGKILL ingestion"
    KILL_STRATEGY = "SIGKILL strategy"
    KILL_RISK = "SIGKILL risk"
    KILL_EXECUTION = "SIGKILL execution"
    RESTART_RABBITMQ = "restart RabbitMQ"
    RESTART_POSTGRES = "restart PostgreSQL"
    STOP_REDIS = "stop Redis"

    @property
    def killed_service(self) -> str | None:
        """Return the service this fault kills, if it kills one."""
        if self.name.startswith("KILL_"):
            return self.name.removeprefix("KILL_").lower()
        return None


@dataclass(frozen=True)
class Ledger:
    """The final state a run left: orders, fills, positions, trades and equity."""

    orders: tuple[tuple[object, ...], ...]
    fills: tuple[tuple[object, ...], ...]
    positions: tuple[tuple[object, ...], ...]
    trades: tuple[tuple[object, ...], ...]
    final_cash: float | None
    final_equity: float | None
    last_snapshots: tuple[tuple[object, ...], ...] = field(default=(), compare=False)
    """The last account snapshots (diagnostics only: not part of the comparison)."""

    def differences(self, other: Ledger) -> list[str]:
        """Name the parts of the ledger that differ from another."""
        return [
            name
            for name in ("orders", "fills", "positions", "trades", "final_cash", "final_equity")
            if getattr(self, name) != getattr(other, name)
        ]


def consistency_problems(ledger: Ledger) -> list[str]:
    """Name what is lost or duplicated inside one ledger (independent of any other run).

    Every order's filled quantity equals the sum of its fills, no order is filled beyond its
    approval, and each position equals the signed sum of its symbol's fills.
    """
    problems = []
    filled: dict[object, float] = {}
    net: dict[object, float] = {}
    for _fill_id, order_id, symbol, side, quantity, *_rest in ledger.fills:
        filled[order_id] = filled.get(order_id, 0.0) + float(quantity)  # type: ignore[arg-type]
        sign = 1.0 if side == "BUY" else -1.0
        net[symbol] = net.get(symbol, 0.0) + sign * float(quantity)  # type: ignore[arg-type]
    for order in ledger.orders:
        order_id, approved, recorded = order[0], order[6], float(order[7])  # type: ignore[arg-type]
        if abs(filled.get(order_id, 0.0) - recorded) > 1e-9:
            problems.append(
                f"order {order_id}: filled {recorded}, fills sum {filled.get(order_id)}"
            )
        if approved is not None and recorded > float(approved) + 1e-9:  # type: ignore[arg-type]
            problems.append(f"order {order_id}: filled {recorded} beyond approved {approved}")
    for _account, symbol, quantity, *_rest in ledger.positions:
        if abs(float(quantity) - net.get(symbol, 0.0)) > 1e-9:  # type: ignore[arg-type]
            problems.append(f"position {symbol}: {quantity}, fills net {net.get(symbol)}")
    return problems


@dataclass
class RunResult:
    """What one run produced and what its fault cost."""

    fault: Fault
    bars: int
    ledger: Ledger
    redelivered: int
    recovery_seconds: float | None
    dead_letters: int
    duration_seconds: float
    notes: list[str] = field(default_factory=list)


def read_ledger(database_url: str) -> Ledger:
    """Read the ledger, leaving out wall-clock columns (created/updated/processed times)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:

            def rows(query: str) -> tuple[tuple[object, ...], ...]:
                return tuple(tuple(row) for row in connection.execute(text(query)).all())

            orders = rows(
                "SELECT order_id, strategy, symbol, side, order_type, requested_quantity,"
                " approved_quantity, filled_quantity, average_fill_price, reference_price,"
                " state, signal_time, reason FROM orders ORDER BY order_id"
            )
            fills = rows(
                "SELECT fill_id, order_id, symbol, side, quantity, price, commission, filled_at,"
                " broker FROM fills ORDER BY fill_id"
            )
            positions = rows(
                "SELECT account, symbol, quantity, average_price, realized_pnl, last_price"
                " FROM positions ORDER BY account, symbol"
            )
            trades = rows(
                "SELECT trade_id, account, symbol, direction, quantity, entry_time, entry_price,"
                " exit_time, exit_price, pnl, commission FROM trades ORDER BY trade_id"
            )
            last_snapshots = rows(
                "SELECT id, taken_at, cash, equity FROM account_snapshots"
                " ORDER BY taken_at DESC, id DESC LIMIT 3"
            )
    finally:
        engine.dispose()
    return Ledger(
        orders=orders,
        fills=fills,
        positions=positions,
        trades=trades,
        final_cash=float(last_snapshots[0][2]) if last_snapshots else None,  # type: ignore[arg-type]
        final_equity=float(last_snapshots[0][3]) if last_snapshots else None,  # type: ignore[arg-type]
        last_snapshots=last_snapshots,
    )


def scrape(port: int) -> dict[str, float]:
    """Return every sample of a service's /metrics, keyed ``name{labels}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        lines = response.read().decode("utf-8").splitlines()
    samples = {}
    for line in lines:
        match = _METRIC_LINE.match(line)
        if match is not None:
            key = f"{match['name']}{{{match['labels'] or ''}}}"
            samples[key] = float(match["value"])
    return samples


def metric_total(samples: dict[str, float], name: str) -> float:
    """Sum a counter over all its label sets."""
    return sum(value for key, value in samples.items() if key.startswith(f"{name}{{"))


class ChaosRun:
    """One run on a fresh vhost and database of the private servers."""

    def __init__(
        self,
        servers: ChaosServers,
        directory: Path,
        *,
        bars: int,
        fault: Fault,
        bars_per_second: float = DEFAULT_BARS_PER_SECOND,
    ) -> None:
        self.servers = servers
        self.directory = directory
        self.bars = bars
        self.fault = fault
        self.bars_per_second = bars_per_second
        self.vhost = f"tai-chaos-{uuid.uuid4().hex[:10]}"
        self.database_url = f"{servers.postgres.url.rstrip('/')}/tai_chaos_{uuid.uuid4().hex[:10]}"
        self.replay_file = sample_slice(directory, bars)
        self.notes: list[str] = []

    def execute(self) -> RunResult:
        """Run the pipeline with the fault and return the result (tears everything down)."""
        started = time.monotonic()
        amqp_url = self.servers.rabbitmq.add_vhost(self.vhost)
        create_database_if_missing(self.database_url)
        private = generate_private_key_pem()
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RISK_", "EXECUTION_", "STRATEGY_", "INGESTION_", "GATEWAY_"))
        }
        environment.update(
            {
                "AMQP_URL": amqp_url,
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.servers.redis.url,
                "RISK_APPROVAL_PRIVATE_KEY": private.decode("ascii"),
                "EXECUTION_APPROVAL_PUBLIC_KEYS": public_key_pem(private).decode("ascii"),
                "LOG_LEVEL": "WARNING",
                **{f"{name.upper()}_LOG_LEVEL": "WARNING" for name in SERVICES},
                # sma_cross alone: its decisions depend on the bars only, so a fault can change
                # nothing of the ledger. The portfolio's sizes depend on the equity risk has
                # seen, and a fault delays the fills it sees (README, "Who trades, who sizes").
                "STRATEGY_STRATEGIES": '["sma_cross"]',
            }
        )
        processes = ServiceProcesses(environment=environment, log_directory=self.directory)
        try:
            for name in CONSUMERS:
                processes.start(name)
                processes.wait_ready(name)
            self._start_ingestion(processes)
            recovery = self._inject(processes)
            self._wait_for_ingestion(processes)
            self._wait_until_quiet(timeout=max(120.0, self.bars / 10))
            redelivered = sum(
                int(
                    metric_total(
                        scrape(processes.ops_ports[name]), "tai_messages_redelivered_total"
                    )
                )
                for name in CONSUMERS
            )
            dead_letters = self._dead_letter_count()
            ledger = read_ledger(self.database_url)
        finally:
            processes.stop_all()
            self.servers.rabbitmq.ctl("delete_vhost", self.vhost)
            drop_database_if_exists(self.database_url)
        return RunResult(
            fault=self.fault,
            bars=self.bars,
            ledger=ledger,
            redelivered=redelivered,
            recovery_seconds=recovery,
            dead_letters=dead_letters,
            duration_seconds=time.monotonic() - started,
            notes=self.notes,
        )

    def _start_ingestion(self, processes: ServiceProcesses) -> None:
        processes.start(
            "ingestion",
            {
                "INGESTION_REPLAY_FILE": str(self.replay_file),
                "INGESTION_EXIT_WHEN_DONE": "true",
                "INGESTION_REPLAY_SPEED": str(self.bars_per_second),
            },
        )

    def _consumed(self, processes: ServiceProcesses, name: str) -> float | None:
        try:
            return metric_total(scrape(processes.ops_ports[name]), "tai_messages_consumed_total")
        except OSError:
            return None

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(POLL_SECONDS)
        raise AssertionError(f"{self.fault}: timed out after {timeout}s waiting for {what}")

    def _inject(self, processes: ServiceProcesses) -> float | None:
        """Wait until mid-stream, inject the fault, heal it; return the recovery time."""
        if self.fault is Fault.NONE:
            return None
        threshold = self.bars * FAULT_AT_FRACTION
        victim = self.fault.killed_service
        if victim == "ingestion":
            self._wait(
                lambda: self._ohlcv_rows() >= threshold, 120, "ingestion to store 40 % of the bars"
            )
        else:
            # consumers handle bars and more; the strategy sees exactly one message per bar
            self._wait(
                lambda: (self._consumed(processes, "strategy") or 0) >= threshold,
                300,
                "the strategy to handle 40 % of the bars",
            )
        fault_at = time.monotonic()
        if victim is not None:
            return self._kill_and_restart(processes, victim, fault_at)
        before = {name: self._consumed(processes, name) or 0.0 for name in CONSUMERS}
        if self.fault is Fault.RESTART_RABBITMQ:
            self.servers.rabbitmq.stop()
            self.servers.rabbitmq.start()
        elif self.fault is Fault.RESTART_POSTGRES:
            self.servers.postgres.stop("immediate")
            time.sleep(2.0)
            self.servers.postgres.start()
        elif self.fault is Fault.STOP_REDIS:
            self.servers.redis.stop()
        healed = {name: self._consumed(processes, name) or 0.0 for name in CONSUMERS}
        # Recovered when every consumer handled a message after the fault was healed.
        self._wait(
            lambda: all(
                (self._consumed(processes, name) or 0.0) > max(before[name], healed[name])
                for name in CONSUMERS
            ),
            180,
            "every consumer to handle messages again",
        )
        return time.monotonic() - fault_at

    def _kill_and_restart(self, processes: ServiceProcesses, victim: str, fault_at: float) -> float:
        process = processes.processes[victim]
        # What the victim had taken but not acknowledged comes back to its successor, which
        # counts it in tai_messages_redelivered_total.
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        if victim == "ingestion":
            self._start_ingestion(processes)
            processes.wait_ready(victim)
            self._wait(
                lambda: (
                    metric_total(
                        scrape(processes.ops_ports[victim]), "tai_messages_published_total"
                    )
                    > 0
                ),
                60,
                "the restarted ingestion to publish",
            )
        else:
            processes.start(victim)
            processes.wait_ready(victim)
            self._wait(
                lambda: (self._consumed(processes, victim) or 0) > 0,
                60,
                f"the restarted {victim} to handle a message",
            )
        return time.monotonic() - fault_at

    def _wait_for_ingestion(self, processes: ServiceProcesses) -> None:
        # Under load the replay falls behind its pace: allow several times the nominal duration.
        code = processes.wait_exit(
            "ingestion", timeout=max(600.0, 4 * self.bars / self.bars_per_second)
        )
        if code != 0:
            raise AssertionError(f"ingestion exited with {code}:\n{processes.log('ingestion')}")

    def _ohlcv_rows(self) -> int:
        return self._scalar("SELECT count(*) FROM ohlcv")

    def _scalar(self, query: str) -> int:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return int(connection.execute(text(query)).scalar_one())
        except Exception:  # the database may be restarting
            return -1
        finally:
            engine.dispose()

    def _wait_until_quiet(self, timeout: float) -> None:
        """Wait until every queue is empty and the outbox flushed, twice in a row."""
        deadline = time.monotonic() + timeout
        quiet_polls = 0
        while time.monotonic() < deadline:
            depths = self.servers.rabbitmq.queue_depths(self.vhost)
            busy = any(
                ready + unacknowledged
                for name, (ready, unacknowledged) in depths.items()
                if name != DEAD_LETTER_QUEUE
            )
            unpublished = self._scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            quiet_polls = quiet_polls + 1 if not busy and unpublished == 0 else 0
            if quiet_polls >= 3:
                return
            time.sleep(1.0)
        raise AssertionError(
            f"{self.fault}: pipeline did not settle in {timeout}s: "
            f"{self.servers.rabbitmq.queue_depths(self.vhost)}"
        )

    def _dead_letter_count(self) -> int:
        depths = self.servers.rabbitmq.queue_depths(self.vhost)
        ready, unacknowledged = depths.get(DEAD_LETTER_QUEUE, (0, 0))
        return ready + unacknowledged


class ResultRegistry:
    """The runs of one session, kept for the table printed at its end."""

    def __init__(self) -> None:
        self.results: list[RunResult] = []
        self.baseline: Ledger | None = None

    def record(self, result: RunResult, *, baseline: bool = False) -> None:
        """Keep a run's result (the first baseline is the reference)."""
        self.results.append(result)
        if baseline and self.baseline is None:
            self.baseline = result.ledger


REGISTRY = ResultRegistry()
"""One registry per process: conftest and the test module import this module under one name."""


def format_table(results: list[RunResult], baseline: Ledger | None) -> str:
    """Return the fault table: fault, redelivered, recovery time, ledger equal."""
    header = (
        f"{'fault':<22} {'bars':>6} {'fills':>6} {'redelivered':>11} {'recovery s':>10} "
        f"{'dead letters':>12} {'run s':>7}  ledger equal"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        if baseline is None:
            equal = "n/a"
        else:
            differences = result.ledger.differences(baseline)
            equal = "yes" if not differences else f"NO ({', '.join(differences)})"
        recovery = "-" if result.recovery_seconds is None else f"{result.recovery_seconds:.1f}"
        lines.append(
            f"{result.fault.value:<22} {result.bars:>6} {len(result.ledger.fills):>6} "
            f"{result.redelivered:>11} {recovery:>10} {result.dead_letters:>12} "
            f"{result.duration_seconds:>7.1f}  {equal}"
        )
    return "\n".join(lines)


def results_json(results: list[RunResult], baseline: Ledger | None) -> str:
    """Return the results as JSON (written next to the test artifacts)."""
    return json.dumps(
        [
            {
                "fault": result.fault.value,
                "bars": result.bars,
                "orders": len(result.ledger.orders),
                "fills": len(result.ledger.fills),
                "final_equity": result.ledger.final_equity,
                "redelivered": result.redelivered,
                "recovery_seconds": result.recovery_seconds,
                "dead_letters": result.dead_letters,
                "duration_seconds": round(result.duration_seconds, 1),
                "ledger_equal": None
                if baseline is None
                else not result.ledger.differences(baseline),
                "differences": [] if baseline is None else result.ledger.differences(baseline),
                "last_snapshots": [
                    [str(value) for value in row] for row in result.ledger.last_snapshots
                ],
                "notes": result.notes,
            }
            for result in results
        ],
        indent=2,
    )
