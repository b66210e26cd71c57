"""Private servers for the chaos suite, and the fault table printed at the end of the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.chaos_harness import REGISTRY, format_table, results_json
from tests.chaos.chaos_servers import ChaosServers, ServerUnavailableError
from tests.factories import REPOSITORY_ROOT

FULL = os.environ.get("TAI_CHAOS_FULL") == "1"
"""`make chaos` sets TAI_CHAOS_FULL=1: 5,000 bars and every fault; otherwise the short form."""


@pytest.fixture(scope="session")
def chaos_servers() -> Iterator[ChaosServers]:
    """Start a private RabbitMQ node, PostgreSQL cluster and Redis; remove them afterwards."""
    try:
        servers = ChaosServers.start_all()
    except ServerUnavailableError as error:
        pytest.skip(f"cannot start private servers for the chaos suite: {error}")
    try:
        yield servers
    finally:
        servers.stop_all()


@pytest.fixture(scope="session", autouse=True)
def chaos_report(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the runs, print the fault table and write test-artifacts/chaos-results.json."""
    yield
    if not REGISTRY.results:
        return
    baseline = REGISTRY.baseline
    table = format_table(REGISTRY.results, baseline)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "chaos: every faulty run's ledger against the fault-free run")
        reporter.write_line(table)
    artifacts = Path(os.environ.get("TAI_TEST_ARTIFACTS", REPOSITORY_ROOT / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "chaos-results.json").write_text(
        results_json(REGISTRY.results, baseline) + "\n", encoding="utf-8"
    )
    (artifacts / "chaos-results.txt").write_text(table + "\n", encoding="utf-8")
