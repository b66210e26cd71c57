"""On the real RabbitMQ with broker-setup's users: the broker refuses approvals from anyone but
risk, only execution reads the approvals queue, and execution refuses a forged approval."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import aio_pika
import aiormq
import pytest

from tai_bus import Binding, Subscription
from tai_bus.amqp import AmqpBus
from tai_core.clock import SystemClock
from tai_core.signing import (
    ApprovalSigner,
    generate_private_key_pem,
    public_key_pem,
)
from tai_events import Message, OrderApproved, OrderRequested, Side
from tai_events.codec import Envelope, encode, make_headers
from tai_events.topics import EVENTS_EXCHANGE, ORDER_APPROVED, ORDER_REQUESTED
from tai_execution.app import create_app as create_execution
from tai_execution.config import ExecutionSettings
from tai_store import Store
from tai_telemetry.metrics import Telemetry
from tests.factories import T0
from tests.integration.risk.conftest import ProvisionedBroker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PRIVATE_QUEUE = "tai.execution.approvals-probe"
"""Matches only execution's read permission, exactly like the approvals queue."""


def _approval(signer: ApprovalSigner, order_id: str) -> OrderApproved:
    now = SystemClock().now()
    return signer.sign(
        OrderApproved(
            approval_id=f"apr-{order_id}",
            order_id=order_id,
            strategy="sma_cross",
            symbol="EURUSD",
            side=Side.BUY,
            quantity=1_000_000.0,
            requested_quantity=1_000_000.0,
            price_floor=1.0,
            price_ceiling=1.2,
            signal_time=now,
            issued_at=now,
            expires_at=now + timedelta(minutes=5),
            key_id="0" * 16,
            signature="A" * 86,
        )
    )


async def _publish(url: str, routing_key: str, message: OrderApproved) -> None:
    """Publish as a given user with publisher confirms (errors surface here)."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)
        headers = make_headers(message, producer="test", occurred_at=SystemClock().now())
        await exchange.publish(
            aio_pika.Message(encode(message), headers=dict(headers.to_wire())),  # type: ignore[arg-type]
            routing_key=routing_key,
        )
        # a refused publish closes the channel asynchronously: a second round trip sees it
        await channel.declare_exchange(EVENTS_EXCHANGE, passive=True)


async def test_the_broker_refuses_an_approval_published_by_the_strategy_user(
    provisioned_broker: ProvisionedBroker,
) -> None:
    approval = _approval(ApprovalSigner.from_pem(generate_private_key_pem()), "ord-evil")
    # the strategy user may publish its own order requests ...
    await _publish(provisioned_broker.url("strategy"), ORDER_REQUESTED, approval)
    # ... but the broker refuses its order.approved
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await _publish(provisioned_broker.url("strategy"), ORDER_APPROVED, approval)
    # while the risk user's approval is accepted
    await _publish(provisioned_broker.url("risk"), ORDER_APPROVED, approval)


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    await message.reject(requeue=True)


async def test_only_the_execution_user_may_consume_the_approvals_queue(
    provisioned_broker: ProvisionedBroker,
) -> None:
    # Arrange: execution declares a queue of its own (as it does tai.execution.approvals)
    owner = await aio_pika.connect(provisioned_broker.url("execution"))
    async with owner:
        channel = await owner.channel()
        await channel.declare_queue(
            PRIVATE_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
    # Act / Assert: risk (or strategy) may not read it
    for intruder in ("risk", "strategy"):
        connection = await aio_pika.connect(provisioned_broker.url(intruder))
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(PRIVATE_QUEUE, ensure=False)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
                await queue.consume(_ignore)


@pytest.fixture
async def execution_store(database_url: str) -> AsyncIterator[Store]:
    store = Store(database_url)
    await store.migrate()
    yield store
    await store.close()


async def test_execution_over_rabbitmq_refuses_a_forged_approval_and_alerts(
    provisioned_broker: ProvisionedBroker, database_url: str, execution_store: Store
) -> None:
    # Arrange: the real execution app on RabbitMQ, trusting risk's public key only
    risk_key = generate_private_key_pem()
    clock = SystemClock()
    telemetry = Telemetry(service="execution")
    # the admin account of the vhost: AmqpBus declares the shared exchanges itself, which the
    # least-privileged service users may not (see the report on issue 6)
    bus = AmqpBus(provisioned_broker.url("admin"), "execution", clock=clock, telemetry=telemetry)
    settings = ExecutionSettings(
        approval_public_keys=public_key_pem(risk_key).decode(),
        database_url=database_url,
        amqp_url="memory://",
        outbox_sweep_seconds=0.2,
        reconcile_seconds=0,
    )
    execution = create_execution(
        settings, bus=bus, store=execution_store, clock=clock, telemetry=telemetry
    )
    await bus.start()
    await execution.start()
    alerts: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    observer = await aio_pika.connect(provisioned_broker.url("admin"))
    try:
        channel = await observer.channel()
        queue = await channel.declare_queue("test.alerts", exclusive=True)
        await queue.bind(EVENTS_EXCHANGE, "alert.*")
        await queue.consume(alerts.put, no_ack=True)
        forger = ApprovalSigner.from_pem(generate_private_key_pem())
        # Act: a stolen risk password, but not risk's signing key
        await _publish(provisioned_broker.url("risk"), ORDER_APPROVED, _approval(forger, "ord-f"))
        alert = await asyncio.wait_for(alerts.get(), timeout=30)
        # Assert: refused with a critical alert, audited, and no order exists
        assert alert.routing_key == "alert.critical"
        assert b"approval_signature_invalid" in alert.body
        async with execution_store.transaction() as unit:
            audit = await unit.audit.list(action="execution.approval_refused")
            order = await unit.orders.get("ord-f")
        assert [entry.outcome for entry in audit] == ["approval_signature_invalid"]
        assert order is None
        assert all(
            working.order_id != "ord-f" for working in execution.context.broker.working_orders()
        )
    finally:
        await observer.close()
        await execution.stop()
        await bus.close()


async def test_services_run_on_the_bus_as_their_least_privileged_users(
    provisioned_broker: ProvisionedBroker,
) -> None:
    # Arrange: the risk user may not configure the shared exchanges, only use them
    received: list[str] = []
    arrived = asyncio.Event()

    async def record(envelope: Envelope[Message]) -> None:
        assert isinstance(envelope.message, OrderRequested)
        received.append(envelope.message.order_id)
        arrived.set()

    risk_bus = AmqpBus(provisioned_broker.url("risk"), "risk")
    await risk_bus.subscribe(Subscription("tai.risk.orders", [Binding(ORDER_REQUESTED)], record))
    strategy_bus = AmqpBus(provisioned_broker.url("strategy"), "strategy")
    request = OrderRequested(
        order_id="ord-least-privilege",
        strategy="sma_cross",
        symbol="EURUSD",
        side=Side.BUY,
        quantity=1.0,
        reference_price=1.1,
        signal_time=T0,
        requested_at=T0,
    )
    # Act: both start (passively finding the exchanges) and a request flows between them
    await risk_bus.start()
    await strategy_bus.start()
    try:
        await strategy_bus.publish(request)
        await asyncio.wait_for(arrived.wait(), timeout=30)
    finally:
        await strategy_bus.close()
        await risk_bus.close()
    # Assert
    assert received == ["ord-least-privilege"]
