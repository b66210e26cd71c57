"""Two risk processes on one single-active-consumer queue: SIGKILL the active one mid-stream and
the standby takes over — no decision lost, none duplicated, the same decisions as a fault-free
run (compared in PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import aio_pika
import pytest
from sqlalchemy import create_engine, text

from tai_core.clock import SystemClock
from tai_core.signing import generate_private_key_pem
from tai_events import OrderRequested, Side
from tai_events.codec import encode, make_headers
from tai_events.topics import EVENTS_EXCHANGE, ORDER_REQUESTED
from tai_store import Store
from tai_store.database import create_database_if_missing, drop_database_if_exists
from tests.factories import make_bar
from tests.integration.risk.conftest import AMQP_BASE, POSTGRES_BASE

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

ORDERS = 60
KILL_AFTER_DECISIONS = 15
PRIVATE_PEM = generate_private_key_pem().decode()
BARS = [make_bar(index, 1.10 + 0.002 * ((index % 7) - 3)) for index in range(48)]
LAST_BAR = BARS[-1]


def _rabbitmqctl(*arguments: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _requests() -> list[OrderRequested]:
    """Buys and sells, a few too large (notional), and bursts past the order rate."""
    requests = []
    for index in range(ORDERS):
        requests.append(
            OrderRequested(
                order_id=f"ord-{index:03d}",
                strategy="sma_cross" if index % 4 else "breakout",
                symbol="EURUSD",
                side=Side.BUY if index % 3 else Side.SELL,
                quantity=50_000.0 if index % 11 == 5 else 1_000.0 * (1 + index % 5),
                reference_price=LAST_BAR.close,
                signal_time=LAST_BAR.closed_at + timedelta(seconds=5 * index),
                requested_at=LAST_BAR.closed_at,
            )
        )
    return requests


class Run:
    """A vhost, a database and risk processes for one run of the stream."""

    def __init__(self, log_directory: Path) -> None:
        tag = uuid.uuid4().hex[:12]
        self.vhost = f"tai-risk-failover-{tag}"
        self.database_url = f"{POSTGRES_BASE.rsplit('/', 1)[0]}/tai_risk_failover_{tag}"
        self.amqp_url = f"{AMQP_BASE.rstrip('/')}/{self.vhost}"
        self.log_directory = log_directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Run:
        _rabbitmqctl("add_vhost", self.vhost)
        _rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        create_database_if_missing(self.database_url)
        return self

    def __exit__(self, *_: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
        _rabbitmqctl("delete_vhost", self.vhost)
        drop_database_if_exists(self.database_url)

    def start_risk(self, name: str) -> subprocess.Popen[bytes]:
        """Start `trading-ai service risk` and wait until it is ready."""
        port = _free_port()
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("RISK_")
        }
        environment.update(
            {
                "AMQP_URL": self.amqp_url,
                "DATABASE_URL": self.database_url,
                "RISK_APPROVAL_PRIVATE_KEY": PRIVATE_PEM,
                "RISK_OPS_PORT": str(port),
                "RISK_OUTBOX_SWEEP_SECONDS": "0.2",
                "LOG_LEVEL": "WARNING",
                "RISK_LOG_LEVEL": "WARNING",
            }
        )
        log = (self.log_directory / f"{self.vhost}-{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "tai_cli.main", "service", "risk"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"risk {name} exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return process
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"risk {name} not ready")

    def consumer_states(self) -> list[str]:
        """Return the activity status of each consumer on the orders queue."""
        output = _rabbitmqctl("list_consumers", "-p", self.vhost, "queue_name", "activity_status")
        return sorted(
            line.split("\t")[1]
            for line in output.splitlines()
            if line.startswith("tai.risk.orders\t")
        )

    def count(self, sql: str) -> int:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return int(connection.execute(text(sql)).scalar_one())
        finally:
            engine.dispose()

    def decisions(self) -> dict[str, object]:
        """Return what risk decided, as stored: orders, approvals and audited decisions."""
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                orders = connection.execute(
                    text(
                        "SELECT order_id, state, requested_quantity, approved_quantity, reason "
                        "FROM orders ORDER BY order_id"
                    )
                ).all()
                approvals = connection.execute(
                    text("SELECT order_id, approval_id, payload FROM approvals ORDER BY order_id")
                ).all()
                audited = connection.execute(
                    text(
                        "SELECT subject, outcome, count(*) FROM audit_log "
                        "WHERE action = 'risk.decision' GROUP BY subject, outcome "
                        "ORDER BY subject"
                    )
                ).all()
        finally:
            engine.dispose()
        return {
            "orders": [tuple(row) for row in orders],
            "approvals": [
                (
                    order_id,
                    approval_id,
                    payload["side"],
                    payload["quantity"],
                    payload["price_floor"],
                    payload["price_ceiling"],
                )
                for order_id, approval_id, payload in approvals
            ],
            "audited": [tuple(row) for row in audited],
        }


async def _seed_bars(database_url: str) -> None:
    """Store the bars as ingestion does (risk rebuilds its market history from them)."""
    store = Store(database_url)
    try:
        await store.migrate()
        async with store.transaction() as unit:
            await unit.ohlcv.upsert_many(BARS)
    finally:
        await store.close()


async def _publish_requests(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)
        for index, request in enumerate(_requests()):
            headers = make_headers(
                request,
                producer="strategy",
                occurred_at=SystemClock().now(),
                message_id=f"msg-{index:03d}",
            )
            await exchange.publish(
                aio_pika.Message(
                    encode(request),
                    headers=dict(headers.to_wire()),  # type: ignore[arg-type]
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=ORDER_REQUESTED,
            )


def _wait_for(run: Run, predicate_sql: str, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.count(predicate_sql) >= expected:
            return
        time.sleep(0.05)
    pytest.fail(f"{predicate_sql!r} did not reach {expected} in {timeout}s")


DECIDED = "SELECT count(*) FROM audit_log WHERE action = 'risk.decision'"
UNPUBLISHED = "SELECT count(*) FROM outbox WHERE published_at IS NULL"


@pytest.fixture
def log_directory(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: cannot create an isolated vhost")
    return tmp_path


def test_killing_the_active_risk_process_loses_and_duplicates_no_decision(
    log_directory: Path,
) -> None:
    # Arrange: the fault-free reference run, one risk process
    with Run(log_directory) as reference:
        asyncio.run(_seed_bars(reference.database_url))
        reference.start_risk("only")
        asyncio.run(_publish_requests(reference.amqp_url))
        _wait_for(reference, DECIDED, ORDERS, timeout=120)
        expected = reference.decisions()

    with Run(log_directory) as faulty:
        asyncio.run(_seed_bars(faulty.database_url))
        active = faulty.start_risk("active")
        faulty.start_risk("standby")
        states_before = faulty.consumer_states()
        # Act: SIGKILL the active process while it works through the stream
        asyncio.run(_publish_requests(faulty.amqp_url))
        _wait_for(faulty, DECIDED, KILL_AFTER_DECISIONS, timeout=60)
        os.kill(active.pid, signal.SIGKILL)
        active.wait(timeout=30)
        decided_at_kill = faulty.count(DECIDED)
        _wait_for(faulty, DECIDED, ORDERS, timeout=120)
        time.sleep(1.0)  # anything decided twice would show up meanwhile
        _wait_for_zero(faulty, UNPUBLISHED, timeout=30)
        actual = faulty.decisions()
        states_after = faulty.consumer_states()

    # Assert: the standby took over mid-stream ...
    assert states_before == ["single_active", "waiting"]
    assert states_after == ["single_active"]
    assert decided_at_kill < ORDERS
    # ... and the ledger holds exactly the decisions of the fault-free run
    assert actual == expected
    outcomes = {outcome for _subject, outcome, _count in expected["audited"]}  # type: ignore[attr-defined]
    assert {"approved", "rejected"} <= outcomes
    assert all(count == 1 for _subject, _outcome, count in actual["audited"])  # type: ignore[attr-defined]


def _wait_for_zero(run: Run, sql: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.count(sql) == 0:
            return
        time.sleep(0.1)
    pytest.fail(f"{sql!r} did not reach 0 in {timeout}s")
