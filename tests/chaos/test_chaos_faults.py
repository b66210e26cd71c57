"""Faults mid-stream lose nothing and duplicate nothing: each run's ledger equals the baseline's.

The short form (part of `make test`) replays 200 bars and kills execution mid-stream; `make
chaos` (TAI_CHAOS_FULL=1) replays 5,000 bars and injects every fault in turn. Everything runs
on private RabbitMQ, PostgreSQL and Redis servers that the suite may stop and restart. The
replay is paced (25 bars/s) so that each fault lands while bars keep arriving and the restarted
service has a backlog to work through; risk and execution decide as of each order's signal
(not as of the newest bar they happen to have seen), so the backlog changes no decision.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.chaos_harness import REGISTRY, ChaosRun, Fault, Ledger, consistency_problems
from tests.chaos.chaos_servers import ChaosServers
from tests.chaos.conftest import FULL

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(1800)]

BARS = 5000 if FULL else 200
FAULTS = [fault for fault in Fault if fault is not Fault.NONE] if FULL else [Fault.KILL_EXECUTION]


@pytest.fixture(scope="module")
def baseline(chaos_servers: ChaosServers, tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    """Run the pipeline once without a fault and return its ledger."""
    result = ChaosRun(
        chaos_servers, tmp_path_factory.mktemp("baseline"), bars=BARS, fault=Fault.NONE
    ).execute()
    REGISTRY.record(result, baseline=True)
    return result.ledger


def test_the_fault_free_run_trades(baseline: Ledger) -> None:
    # the comparison below means something only if the baseline traded
    assert len(baseline.fills) >= (10 if FULL else 2)
    assert baseline.final_equity is not None


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name.lower() for fault in FAULTS])
def test_ledger_after_the_fault_equals_the_fault_free_ledger(
    fault: Fault, baseline: Ledger, chaos_servers: ChaosServers, tmp_path: Path
) -> None:
    # Arrange
    run = ChaosRun(chaos_servers, tmp_path, bars=BARS, fault=fault)
    # Act
    result = run.execute()
    REGISTRY.record(result)
    # Assert: inside the run nothing was lost, duplicated or dead-lettered ...
    assert consistency_problems(result.ledger) == []
    assert result.dead_letters == 0
    # ... and the ledger is the fault-free run's: the same orders, fills, positions and equity
    assert result.ledger.differences(baseline) == []
