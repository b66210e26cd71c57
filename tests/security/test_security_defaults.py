"""Careless-operator defaults: what an unconfigured install does must be the safe thing.

Issue 16: the embedded run forced ``Secure=False`` on the session cookie even on 0.0.0.0;
``users add`` took ``aaaaaaaaaaaa`` as an admin password; ``embedded.sqlite`` (password
hashes) was created 0644 and an existing data directory kept 0755; the default ``AMQP_URL``
(guest on ``/``, no topic permissions) was accepted by deployed services; the banner pointed
at ``/docs`` while the docs live at ``/api/docs``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tai_cli.commands import app as cli
from tai_cli.embedded import EMBEDDED_DATABASE, EmbeddedOptions, EmbeddedSystem
from tai_core.settings import deployed_broker_problem
from tests.unit.gateway.gateway_support import make_settings

pytestmark = pytest.mark.integration

TRIVIAL_PASSWORDS = [
    "aaaaaaaaaaaa",
    "Password1234",
    "P@ssw0rd2024!",
    "qwertyuiop12",
    "123456789012",
    "abcabcabcabc",
    "letmeinletmein",
    "admin-admin-admin",
]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[EmbeddedSystem]:
    # an existing data directory, as loose as an old install or a careless mkdir left it
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    system = EmbeddedSystem(
        EmbeddedOptions(data_directory=data, serve_console=False, api_port=0, console_port=0)
    )
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


async def test_the_ledger_keys_and_data_directory_are_owner_only(
    embedded: EmbeddedSystem,
) -> None:
    data = embedded.options.data_directory
    assert _mode(data) == 0o700
    assert _mode(data / EMBEDDED_DATABASE) == 0o600
    for companion in data.glob(f"{EMBEDDED_DATABASE}-*"):
        assert _mode(companion) == 0o600, companion
    assert _mode(data / "keys") == 0o700
    assert _mode(embedded.operator_keys.private_key) == 0o600


def test_an_existing_loose_secret_file_is_tightened(tmp_path: Path) -> None:
    from tai_cli.keys import ensure_secret  # noqa: PLC0415

    secret = tmp_path / "session-secret"
    secret.write_text("s" * 48, encoding="utf-8")
    secret.chmod(0o644)
    ensure_secret(secret, lambda: "unused")
    assert _mode(secret) == 0o600


@pytest.mark.parametrize(
    ("host", "secure"), [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)]
)
async def test_the_embedded_cookie_is_secure_beyond_loopback(
    tmp_path: Path, host: str, secure: bool
) -> None:
    system = EmbeddedSystem(
        EmbeddedOptions(data_directory=tmp_path / "data", serve_console=False, host=host)
    )
    try:
        assert system.gateway_settings("s" * 48).cookie_secure is secure
    finally:
        await system.store.close()


def test_an_insecure_cookie_on_a_public_bind_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="session_cookie_secure"):
        make_settings(console_host="0.0.0.0", session_cookie_secure=False)


@pytest.mark.parametrize("password", TRIVIAL_PASSWORDS)
def test_users_add_refuses_trivial_and_breached_passwords(tmp_path: Path, password: str) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite'}"
    result = CliRunner().invoke(
        cli,
        ["users", "add", "admin", "--role", "admin", "--database-url", database],
        input=password + "\n",
    )
    assert result.exit_code == 2, result.output
    assert "password" in result.output


def test_users_add_accepts_a_strong_password(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite'}"
    result = CliRunner().invoke(
        cli,
        ["users", "add", "ops", "--role", "admin", "--database-url", database],
        input="correct-horse-battery-staple-7\n",
    )
    assert result.exit_code == 0, result.output
    assert _mode(tmp_path / "ledger.sqlite") == 0o600


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:guest@127.0.0.1:5672/",
        "amqp://tai-risk:secret@rabbitmq:5672/",
        "amqp://guest:guest@rabbitmq:5672/tai",
        "amqp://rabbitmq:5672/tai",
    ],
)
def test_deployed_services_refuse_guest_or_the_default_vhost(url: str) -> None:
    assert deployed_broker_problem(url) is not None


@pytest.mark.parametrize(
    "url",
    ["memory://", "amqp://tai-risk:secret@rabbitmq:5672/tai", "amqp://guest:guest@127.0.0.1/t1"],
)
def test_the_embedded_bus_and_provisioned_accounts_are_accepted(url: str) -> None:
    assert deployed_broker_problem(url) is None


def test_a_service_started_with_the_default_broker_url_stops_naming_amqp_url(
    tmp_path: Path,
) -> None:
    # Act: the real command with nothing but a key and a database: AMQP_URL is the default
    from tai_core.signing import generate_private_key_pem  # noqa: PLC0415

    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite'}",
        "RISK_APPROVAL_PRIVATE_KEY": generate_private_key_pem().decode("ascii"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "tai_cli.main", "service", "risk"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Assert
    assert result.returncode == 2
    assert "AMQP_URL" in result.stderr


async def test_the_banner_and_result_point_at_the_served_docs(tmp_path: Path) -> None:
    import socket  # noqa: PLC0415

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
            return port

    options = EmbeddedOptions(
        data_directory=tmp_path / "data",
        serve_console=True,
        api_port=free_port(),
        console_port=free_port(),
        replay_file=_tiny_replay(tmp_path),
    )
    system = EmbeddedSystem(options)
    await system.start()
    try:
        import asyncio  # noqa: PLC0415

        async with asyncio.timeout(30):
            while system.gateway is None or not system.gateway.started_servers:  # noqa: ASYNC110 - uvicorn has no started event
                await asyncio.sleep(0.02)
        result = await system.result(await system.replay())
        async with httpx.AsyncClient() as client:
            docs = await client.get(result.urls["api"])
    finally:
        await system.stop()
    assert result.urls["api"].endswith("/api/docs")
    assert docs.status_code == 200


def _tiny_replay(directory: Path) -> Path:
    from tai_ingestion.samples import sample_path  # noqa: PLC0415

    lines = sample_path("EURUSD.csv").read_text(encoding="utf-8").splitlines()
    path = directory / "EURUSD.csv"
    path.write_text("\n".join(lines[:40]) + "\n", encoding="utf-8")
    return path
