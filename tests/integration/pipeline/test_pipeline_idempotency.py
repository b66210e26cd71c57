"""Redeliveries never double an order or a fill; forged approvals are refused and alerted.

The services run on the in-memory bus (same delivery semantics as RabbitMQ) and SQLite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import SystemClock
from tai_core.signing import ApprovalSigner, generate_private_key_pem, public_key_pem
from tai_events import AlertRaised, Message, OrderApproved
from tai_events.codec import Envelope, make_headers
from tai_events.topics import ALL_ALERTS, ORDER_APPROVED
from tai_execution.app import ExecutionApp
from tai_execution.app import create_app as create_execution
from tai_execution.config import ExecutionSettings
from tai_risk.app import RiskApp
from tai_risk.app import create_app as create_risk
from tai_risk.config import RiskSettings
from tai_store import Store
from tai_strategy.app import create_app as create_strategy
from tai_strategy.config import StrategySettings
from tai_telemetry.metrics import Telemetry
from tests.factories import make_bar

pytestmark = pytest.mark.integration

# Falls, then rises: SMA(2) crosses above SMA(4) at index 8; one more bar fills the order.
CLOSES = [1.10, 1.09, 1.08, 1.07, 1.06, 1.05, 1.06, 1.07, 1.08, 1.09, 1.10]


@dataclass
class Pipeline:
    bus: InMemoryBus
    store: Store
    risk: RiskApp
    execution: ExecutionApp
    approvals: list[Envelope[Message]]
    alerts: list[AlertRaised]


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    private_pem = generate_private_key_pem()
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite'}"
    clock = SystemClock()
    telemetry = Telemetry(service="test")
    store = Store(url)
    await store.migrate()
    bus = InMemoryBus("test", clock=clock, telemetry=telemetry, deterministic=True)
    common = {"database_url": url, "amqp_url": "memory://"}
    risk = create_risk(
        RiskSettings(approval_private_key=private_pem.decode(), outbox_sweep_seconds=0, **common),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
    )
    execution = create_execution(
        ExecutionSettings(
            approval_public_keys=public_key_pem(private_pem).decode(),
            outbox_sweep_seconds=0,
            **common,
        ),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
    )
    strategy = create_strategy(
        StrategySettings(sma_fast=2, sma_slow=4, quantity=1000, **common),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
    )
    approvals: list[Envelope[Message]] = []
    alerts: list[AlertRaised] = []

    async def capture_approval(envelope: Envelope[Message]) -> None:
        approvals.append(envelope)

    async def capture_alert(envelope: Envelope[Message]) -> None:
        assert isinstance(envelope.message, AlertRaised)
        alerts.append(envelope.message)

    await bus.start()
    await bus.subscribe(Subscription("test.approvals", [Binding(ORDER_APPROVED)], capture_approval))
    await bus.subscribe(Subscription("test.alerts", [Binding(ALL_ALERTS)], capture_alert))
    for app in (risk, execution, strategy):
        await app.start()
    yield Pipeline(bus, store, risk, execution, approvals, alerts)
    await bus.close()
    await store.close()


async def _replay(pipeline: Pipeline, closes: list[float]) -> None:
    for index, close in enumerate(closes):
        bar = make_bar(index, close)
        async with pipeline.store.transaction() as unit:
            await unit.ohlcv.upsert_many([bar])
        await pipeline.bus.publish(bar)
        await pipeline.bus.drain()


async def _ledger(store: Store) -> tuple[int, int]:
    async with store.transaction() as unit:
        orders = await unit.orders.list_by_state(
            ["NEW", "SUBMITTED", "FILLED", "REJECTED", "CANCELLED", "EXPIRED", "PARTIALLY_FILLED"]
        )
        fills = await unit.fills.list()
    return len(orders), len(fills)


async def test_the_pipeline_turns_a_golden_cross_into_one_fill(pipeline: Pipeline) -> None:
    await _replay(pipeline, CLOSES)
    assert await _ledger(pipeline.store) == (1, 1)


async def test_redelivered_bars_cause_no_second_order_or_fill(pipeline: Pipeline) -> None:
    # Arrange
    bars = [make_bar(index, close) for index, close in enumerate(CLOSES)]
    headers = [make_headers(bar, producer="ingestion", occurred_at=bar.closed_at) for bar in bars]
    for bar, header in zip(bars, headers, strict=True):
        async with pipeline.store.transaction() as unit:
            await unit.ohlcv.upsert_many([bar])
        await pipeline.bus.publish(bar, headers=header)
        await pipeline.bus.drain()
    before = await _ledger(pipeline.store)
    # Act: every bar delivered again, same message ids (a broker redelivery)
    for bar, header in zip(bars, headers, strict=True):
        await pipeline.bus.publish(bar, headers=header)
        await pipeline.bus.drain()
    # Assert
    assert before == (1, 1)
    assert await _ledger(pipeline.store) == before


async def test_redelivered_approval_is_not_filled_twice(pipeline: Pipeline) -> None:
    # Arrange
    await _replay(pipeline, CLOSES)
    [approval] = pipeline.approvals
    # Act: the same delivery again, then the same approval under a fresh message id (a replay)
    await pipeline.bus.publish(approval.message, headers=approval.headers)
    await pipeline.bus.drain()
    await pipeline.bus.publish(approval.message)
    await pipeline.bus.drain()
    # Assert
    assert await _ledger(pipeline.store) == (1, 1)
    assert [alert.code for alert in pipeline.alerts] == ["approval_replayed"]


async def test_approval_with_a_bad_signature_is_refused_and_alerted(pipeline: Pipeline) -> None:
    # Arrange: a valid approval, re-signed by a key risk never had
    await _replay(pipeline, CLOSES[:9])
    [approval] = pipeline.approvals
    assert isinstance(approval.message, OrderApproved)
    forger = ApprovalSigner.from_pem(generate_private_key_pem())
    forged = forger.sign(
        approval.message.model_copy(
            update={"order_id": "ord-forged", "approval_id": "apr-forged", "quantity": 1_000_000.0}
        )
    )
    # Act
    await pipeline.bus.publish(forged)
    await pipeline.bus.drain()
    # Assert: refused, alerted, audited — and nothing reached the broker
    assert [alert.code for alert in pipeline.alerts] == ["approval_signature_invalid"]
    assert pipeline.alerts[0].severity.value == "critical"
    async with pipeline.store.transaction() as unit:
        audit = await unit.audit.list(action="execution.approval_refused")
        order = await unit.orders.get("ord-forged")
    assert [entry.outcome for entry in audit] == ["approval_signature_invalid"]
    assert order is None
    assert all(
        order.order_id != "ord-forged"
        for order in pipeline.execution.context.broker.working_orders()
    )


async def test_tampered_quantity_with_the_original_signature_is_refused(pipeline: Pipeline) -> None:
    await _replay(pipeline, CLOSES[:9])
    [approval] = pipeline.approvals
    assert isinstance(approval.message, OrderApproved)
    tampered = approval.message.model_copy(update={"quantity": 1_000_000.0})
    # the genuine approval is still pending; the tampered copy arrives first under a new id
    await pipeline.bus.publish(tampered)
    await pipeline.bus.drain()
    assert [alert.code for alert in pipeline.alerts] == ["approval_signature_invalid"]
