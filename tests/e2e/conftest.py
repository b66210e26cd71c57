"""Fixtures that run services as separate processes on the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tai_core.signing import generate_private_key_pem, public_key_pem
from tai_store.database import create_database_if_missing, drop_database_if_exists

POSTGRES_BASE = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
AMQP_BASE = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rabbitmqctl(*arguments: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, text=True, timeout=60
    ).stdout


@dataclass
class Broker:
    """A throwaway RabbitMQ virtual host."""

    vhost: str
    url: str

    def queue_depths(self) -> dict[str, int]:
        """Return ready + unacknowledged messages per queue."""
        output = _rabbitmqctl(
            "list_queues", "-p", self.vhost, "name", "messages_ready", "messages_unacknowledged"
        )
        depths = {}
        for line in output.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[1].isdigit():
                depths[parts[0]] = int(parts[1]) + int(parts[2])
        return depths


@pytest.fixture
def broker() -> Iterator[Broker]:
    """Create a fresh vhost (so no queue state leaks between runs) and delete it afterwards."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: cannot create an isolated vhost")
    vhost = f"tai-e2e-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    base = AMQP_BASE.rstrip("/")
    try:
        yield Broker(vhost=vhost, url=f"{base}/{vhost}")
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def database_url() -> Iterator[str]:
    """Create a fresh PostgreSQL database and drop it afterwards."""
    base = POSTGRES_BASE.rsplit("/", 1)[0]
    url = f"{base}/tai_e2e_{uuid.uuid4().hex[:12]}"
    create_database_if_missing(url)
    try:
        yield url
    finally:
        drop_database_if_exists(url)


@dataclass
class ServiceProcesses:
    """Services started as `trading-ai service <name>` processes, with their logs."""

    environment: dict[str, str]
    log_directory: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ops_ports: dict[str, int] = field(default_factory=dict)

    def start(self, name: str, extra: dict[str, str] | None = None) -> None:
        """Start a service process."""
        port = free_port()
        environment = {**self.environment, **(extra or {})}
        prefix = name.upper()
        environment[f"{prefix}_OPS_PORT"] = str(port)
        log = (self.log_directory / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "tai_cli.main", "service", name],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.ops_ports[name] = port

    def wait_ready(self, name: str, timeout: float = 60.0, port: int | None = None) -> None:
        """Wait until the service's /ready answers 200 (or fail with its log)."""
        url = f"http://127.0.0.1:{port or self.ops_ports[name]}/ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{self.log(name)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{name} not ready after {timeout}s:\n{self.log(name)}")

    def log(self, name: str) -> str:
        """Return the tail of a service's log."""
        path = self.log_directory / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def wait_exit(self, name: str, timeout: float) -> int:
        """Wait for a process to exit by itself and return its code."""
        return self.processes[name].wait(timeout=timeout)

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM every process and wait for a graceful exit."""
        codes: dict[str, int | None] = {}
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = None
        return codes


@pytest.fixture
def approval_keys() -> tuple[str, str]:
    """Return a fresh (private PEM, public PEM) approval key pair."""
    private = generate_private_key_pem()
    return private.decode("ascii"), public_key_pem(private).decode("ascii")


@pytest.fixture
def services(
    broker: Broker,
    database_url: str,
    approval_keys: tuple[str, str],
    tmp_path: Path,
) -> Iterator[ServiceProcesses]:
    """Yield a process manager wired to the fresh vhost and database; stop everything after."""
    private_pem, public_pem = approval_keys
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RISK_", "EXECUTION_", "STRATEGY_", "INGESTION_", "GATEWAY_"))
    }
    environment.update(
        {
            "AMQP_URL": broker.url,
            "DATABASE_URL": database_url,
            "RISK_APPROVAL_PRIVATE_KEY": private_pem,
            "EXECUTION_APPROVAL_PUBLIC_KEYS": public_pem,
            "LOG_LEVEL": "WARNING",
            "RISK_LOG_LEVEL": "WARNING",
            "EXECUTION_LOG_LEVEL": "WARNING",
            "STRATEGY_LOG_LEVEL": "WARNING",
            "INGESTION_LOG_LEVEL": "WARNING",
        }
    )
    manager = ServiceProcesses(environment=environment, log_directory=tmp_path)
    try:
        yield manager
    finally:
        manager.stop_all()
