"""The ops port listens on loopback unless OPS_HOST opens it (containers, for their probes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tai_core.settings import ServiceSettings, load_settings
from tai_runtime import runner


class _RecordingOpsServer:
    binds: list[tuple[str, int]] = []

    def __init__(self, _telemetry: Any, _ready: Callable[[], bool], host: str, port: int) -> None:
        self.binds.append((host, port))

    async def start(self) -> None:
        """Pretend to listen."""

    async def stop(self) -> None:
        """Pretend to stop."""


class _FinishedApp:
    name = "demo"

    def __init__(self) -> None:
        self.done = asyncio.Event()

    async def start(self) -> None:
        self.done.set()  # nothing to do: stop as soon as the runtime is up

    async def stop(self) -> None:
        """Nothing to stop."""

    def ready(self) -> bool:
        return True


def _factory(_settings: ServiceSettings, **_dependencies: Any) -> _FinishedApp:
    return _FinishedApp()


def _settings(tmp_path: Path) -> ServiceSettings:
    return load_settings(
        ServiceSettings,
        amqp_url="memory://",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}",
        ops_port=18_080,
    )


@pytest.fixture
def ops_binds(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    _RecordingOpsServer.binds = []
    monkeypatch.setattr(runner, "OpsServer", _RecordingOpsServer)
    return _RecordingOpsServer.binds


def test_ops_host_defaults_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPS_HOST", raising=False)
    assert load_settings(ServiceSettings).ops_host == "127.0.0.1"


def test_ops_host_is_read_from_the_shared_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPS_HOST", "0.0.0.0")
    assert load_settings(ServiceSettings).ops_host == "0.0.0.0"


async def test_a_service_serves_its_ops_port_on_loopback_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ops_binds: list[tuple[str, int]]
) -> None:
    monkeypatch.delenv("OPS_HOST", raising=False)
    await runner.serve("demo", _settings(tmp_path), _factory, finished=lambda app: app.done)
    assert ops_binds == [("127.0.0.1", 18_080)]


async def test_a_container_opens_the_ops_port_with_ops_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ops_binds: list[tuple[str, int]]
) -> None:
    monkeypatch.setenv("OPS_HOST", "0.0.0.0")
    await runner.serve("demo", _settings(tmp_path), _factory, finished=lambda app: app.done)
    assert ops_binds == [("0.0.0.0", 18_080)]
