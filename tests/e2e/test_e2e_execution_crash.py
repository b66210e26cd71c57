"""SIGKILL the execution process between sending a deal to IG and recording its confirmation.

The execution service runs as its own process on a throwaway RabbitMQ vhost and PostgreSQL
database, dealing through the IG adapter with a local IG stub. The stub holds its reply to
``POST /positions/otc`` (the deal is done at "IG") and tells the test, which kills the process
with SIGKILL at that moment. After a restart the service must settle the order from
``GET /confirms/{dealReference}``: the stub counts every dealReference it received, so a second
send would show, and the ledger's positions must equal the stub's.
"""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from tai_bus import AmqpBus
from tai_core.clock import SystemClock
from tai_core.signing import ApprovalSigner
from tai_execution.ig import deal_reference
from tai_store import Store
from tests.e2e.conftest import Broker, ServiceProcesses
from tests.integration.execution.execution_support import record_as_risk, signed_approval
from tests.integration.execution.ig_stub import (
    API_KEY,
    IDENTIFIER,
    PASSWORD,
    start_stub,
    stop_stub,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(300)]

EPIC = "CS.D.EURUSD.MINI.IP"
DEAL_SENT_TIMEOUT = 60.0
"""A guard against a hang, not a synchronisation: the test awaits the stub's event."""


async def test_sigkill_between_deal_and_confirmation_never_deals_twice(
    services: ServiceProcesses,
    broker: Broker,
    database_url: str,
    approval_keys: tuple[str, str],
) -> None:
    # Arrange: the stub keeps the deal's reply until the process is dead
    stub, runner, stub_url = await start_stub()
    stub.state.hold_deals = True
    environment = {
        "EXECUTION_BROKER": "ig",
        "EXECUTION_IG_BASE_URL": stub_url,
        "EXECUTION_IG_API_KEY": API_KEY,
        "EXECUTION_IG_IDENTIFIER": IDENTIFIER,
        "EXECUTION_IG_PASSWORD": PASSWORD,
        "EXECUTION_IG_EPICS": json.dumps({"EURUSD": EPIC}),
        "EXECUTION_IG_TIMEOUT_SECONDS": "120",
        "EXECUTION_RECONCILE_SECONDS": "0",
        # the IG allowances counted in-process: the stub's account is this test's alone
        "REDIS_URL": "",
    }
    store = Store(database_url)
    bus = AmqpBus(broker.url, "e2e-test")
    try:
        services.start("execution", environment)
        # The process talks to the stub while starting: wait off the event loop serving it.
        await asyncio.to_thread(services.wait_ready, "execution")
        private_pem, _public_pem = approval_keys
        clock = SystemClock()
        approval = signed_approval(
            ApprovalSigner.from_pem(private_pem),
            "ord-crash-1",
            signal_time=clock.now(),
            issued_at=clock.now(),
            quantity=20_000.0,  # two mini contracts of 10,000 EUR
        )
        await record_as_risk(store, approval, clock.now())
        await bus.start()
        await bus.publish(approval)
        # Act 1: the deal reaches "IG"; kill the process before it can record the confirmation
        await asyncio.wait_for(stub.state.deal_received.wait(), DEAL_SENT_TIMEOUT)
        process = services.processes["execution"]
        process.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(process.wait, 30) == -signal.SIGKILL
        async with store.transaction() as unit:
            order_after_kill = await unit.orders.get("ord-crash-1")
            fills_after_kill = await unit.fills.for_order("ord-crash-1")
        stub.state.hold_deals = False
        stub.state.release_deals.set()
        # Act 2: restart the service
        services.start("execution", environment)
        await asyncio.to_thread(services.wait_ready, "execution")
        # Assert: killed after SUBMITTED was committed and before any fill was recorded ...
        assert order_after_kill is not None
        assert order_after_kill.state == "SUBMITTED"
        assert fills_after_kill == []
        # ... the restart settled it from IG's confirmation without a second deal ...
        reference = deal_reference("ord-crash-1")
        assert stub.state.deal_posts == {reference: 1}
        async with store.transaction() as unit:
            order = await unit.orders.get("ord-crash-1")
            fills = await unit.fills.for_order("ord-crash-1")
            positions = await unit.positions.list("paper")
            reconciliations = await unit.audit.list(action="execution.reconciliation")
            failures = await unit.audit.list(action="execution.reconciliation_failed")
        assert order is not None
        assert order.state == "FILLED"
        assert [(fill.quantity, fill.price, fill.broker) for fill in fills] == [
            (20_000.0, 1.1, "ig")
        ]
        # ... and the ledger matches the broker.
        ledger = {position.symbol: position.quantity for position in positions}
        assert ledger == {"EURUSD": 20_000.0}
        assert stub.state.net_positions() == {EPIC: 2.0}
        assert [entry.outcome for entry in reconciliations] == ["ok", "ok"]
        assert failures == []
    finally:
        services.stop_all()
        await bus.close()
        await store.close()
        await stop_stub(stub, runner)
