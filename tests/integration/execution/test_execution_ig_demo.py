"""The IG adapter, unchanged, against an IG demo account (opt in: network and credentials).

Run with ``EXECUTION_IG_DEMO=1`` and ``EXECUTION_IG_API_KEY``, ``EXECUTION_IG_IDENTIFIER``,
``EXECUTION_IG_PASSWORD`` of a demo account (docs/runbook.md, "First run against the real
services"). It refuses to run against anything but IG's demo endpoint. It deals the minimum
size of the EUR/USD mini contract and closes it again, so the market must be open.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from tai_core.clock import SystemClock
from tai_events.orders import Side
from tai_execution.ig import (
    DEMO_BASE_URL,
    IgBroker,
    IgClient,
    IgCredentials,
    IgUnavailableError,
    deal_reference,
)
from tai_execution.paper import WorkingOrder
from tai_ingestion.calendar import ForexCalendar
from tai_store.ratelimit import InProcessRateLimiter

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("EXECUTION_IG_DEMO") != "1",
        reason="deals on an IG demo account: set EXECUTION_IG_DEMO=1 and EXECUTION_IG_*",
    ),
]

EPIC = "CS.D.EURUSD.MINI.IP"
CREDENTIALS = ("EXECUTION_IG_API_KEY", "EXECUTION_IG_IDENTIFIER", "EXECUTION_IG_PASSWORD")


@pytest.fixture
async def broker() -> AsyncIterator[IgBroker]:
    missing = [name for name in CREDENTIALS if not os.environ.get(name)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    base_url = os.environ.get("EXECUTION_IG_BASE_URL", DEMO_BASE_URL)
    if base_url != DEMO_BASE_URL:
        pytest.fail(f"refusing to deal anywhere but IG's demo endpoint ({DEMO_BASE_URL})")
    clock = SystemClock()
    async with httpx.AsyncClient(base_url=base_url, timeout=15.0) as http:
        client = IgClient(
            http,
            IgCredentials(
                SecretStr(os.environ["EXECUTION_IG_API_KEY"]),
                os.environ["EXECUTION_IG_IDENTIFIER"],
                SecretStr(os.environ["EXECUTION_IG_PASSWORD"]),
            ),
            limiter=InProcessRateLimiter(clock),
        )
        yield IgBroker(client, {"EURUSD": EPIC}, clock=clock)


async def test_demo_account_reads_its_allowances_and_the_markets_dealing_rules(
    broker: IgBroker,
) -> None:
    # Act
    balance = await broker.balance()
    rules = await broker.market(EPIC)
    # Assert
    assert balance.account_id == broker.client.account_id
    assert broker.client.allowances.account_trading > 0
    assert rules.contract_size > 0
    assert rules.min_size > 0
    assert rules.default_currency in rules.currencies


async def test_demo_deal_is_confirmed_found_by_its_reference_and_closed(broker: IgBroker) -> None:
    # Arrange
    if not ForexCalendar().is_open(datetime.now(UTC)):
        pytest.skip("the FX market is closed")
    rules = await broker.market(EPIC)
    order_id = f"demo-{uuid.uuid4().hex[:12]}"
    quantity = float(rules.min_size) * rules.contract_size
    order = WorkingOrder(
        order_id=order_id,
        strategy="demo",
        symbol="EURUSD",
        side=Side.BUY,
        quantity=quantity,
        signal_time=datetime.now(UTC),
        price_floor=0.0,
        price_ceiling=1e9,
    )
    # Act
    confirmation = await broker.open_position(order)
    try:
        # Assert: confirmed, then found the way a restart would find it (by reference)
        assert confirmation.accepted, confirmation.reason
        assert confirmation.size == float(rules.min_size)
        positions = await broker.open_positions()
        assert deal_reference(order_id) in {position.deal_reference for position in positions}
        activity = None
        for _ in range(10):  # IG lists the activity within seconds
            activity = await broker.deal_from_activity(deal_reference(order_id))
            if activity is not None:
                break
            await asyncio.sleep(2)
        assert activity is not None
        assert activity.accepted
    finally:
        if confirmation.accepted:
            closed = await broker.close_position("EURUSD", Side.SELL, quantity, f"{order_id}-close")
            assert closed.accepted, closed.reason


async def test_demo_reference_never_sent_has_no_trace(broker: IgBroker) -> None:
    # A reference IG never saw: no confirmation, no position, no activity (safe to send).
    assert await broker.confirmation(deal_reference(f"never-{uuid.uuid4().hex}")) is None
    with pytest.raises(IgUnavailableError):
        await broker.await_confirmation(deal_reference(f"never-{uuid.uuid4().hex}"))
