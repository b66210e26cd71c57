"""`trading-ai service gateway` as its own process, configured as compose and Kubernetes run it.

The probes (compose health check, Kubernetes startup/liveness/readiness) ask the ops port for
/health and /ready; the published ports and the Service reach the API and the console only if
they listen beyond loopback (GATEWAY_API_HOST / GATEWAY_CONSOLE_HOST = 0.0.0.0).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _listening_on_any_address(port: int) -> bool:
    """Return True when something listens on 0.0.0.0:port (Linux /proc/net/tcp)."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        pytest.skip("no /proc/net/tcp: cannot see which address a port is bound to")
    for line in table.read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port and address == "00000000":
            return True
    return False


@dataclass
class GatewayProcess:
    process: subprocess.Popen[bytes]
    log: Path
    ops_port: int
    api_port: int
    console_port: int

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[GatewayProcess]:
    ops_port, api_port, console_port = _free_port(), _free_port(), _free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GATEWAY_", "OPS_", "AMQP_", "DATABASE_"))
    }
    environment.update(
        {
            # as in docker-compose.yml and k8s/base (the bus and store are local stand-ins)
            "OPS_HOST": "0.0.0.0",
            "GATEWAY_API_HOST": "0.0.0.0",
            "GATEWAY_CONSOLE_HOST": "0.0.0.0",
            "GATEWAY_OPS_PORT": str(ops_port),
            "GATEWAY_API_PORT": str(api_port),
            "GATEWAY_CONSOLE_PORT": str(console_port),
            "GATEWAY_SESSION_SECRET": "process-test-session-secret-" + "x" * 32,
            "AMQP_URL": "memory://",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite'}",
            "LOG_LEVEL": "WARNING",
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
    )
    log = tmp_path / "gateway.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tai_cli.main", "service", "gateway"],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    running = GatewayProcess(process, log, ops_port, api_port, console_port)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_for(gateway: GatewayProcess, url: str, timeout: float = 60.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            pytest.fail(
                f"the gateway exited with {gateway.process.returncode}:\n{gateway.output()}"
            )
        try:
            status, body = _get(url)
        except OSError:
            status, body = 0, b""
        if status == 200:
            return body
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer 200 within {timeout}s:\n{gateway.output()}")


def test_the_gateway_service_serves_the_ops_endpoints_and_listens_beyond_loopback(
    gateway_process: GatewayProcess,
) -> None:
    ops = f"http://127.0.0.1:{gateway_process.ops_port}"
    # Act: what the Kubernetes probes and the compose health check ask
    health = _wait_for(gateway_process, f"{ops}/health")
    ready = _wait_for(gateway_process, f"{ops}/ready")
    status, metrics = _get(f"{ops}/metrics")
    api_status, _ = _get(f"http://127.0.0.1:{gateway_process.api_port}/health")
    console_status, _ = _get(f"http://127.0.0.1:{gateway_process.console_port}/login")
    # Assert
    assert b'"status":"ok"' in health.replace(b" ", b"")
    assert b'"ready":true' in ready.replace(b" ", b"")
    assert status == 200
    assert b"tai_" in metrics
    assert (api_status, console_status) == (200, 200)
    for port in (gateway_process.ops_port, gateway_process.api_port, gateway_process.console_port):
        assert _listening_on_any_address(port), port
    # ... and SIGTERM stops it cleanly
    gateway_process.process.send_signal(signal.SIGTERM)
    assert gateway_process.process.wait(timeout=30) == 0, gateway_process.output()
