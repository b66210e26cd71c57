"""On the real RabbitMQ with broker-setup's users: the gateway requeues dead letters of every
kind (a bar, a signed approval, a control command) back to the queue that gave up on them,
although its broker user may publish none of those routing keys itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiormq
import pytest

from tai_bus import Binding, PermanentHandlerError, Subscription
from tai_bus.amqp import AmqpBus
from tai_core.clock import SystemClock
from tai_core.signing import ApprovalSigner, generate_private_key_pem
from tai_events import Message
from tai_events.codec import Envelope
from tai_events.control import HaltTrading
from tai_events.topics import CONTROL_EXCHANGE, EVENTS_EXCHANGE, ORDER_APPROVED
from tai_gateway.operations import AmqpOperations
from tests.factories import make_bar
from tests.integration.risk.conftest import (
    ProvisionedBroker,
    provisioned_broker,  # noqa: F401 - the fixture, shared with the risk broker tests
)
from tests.integration.risk.test_risk_broker_security import _approval, _publish
from tests.security.test_security_broker_gateway import _publish_raw

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@dataclass
class FailsOnce:
    """A handler that refuses each message the first time and keeps it the second."""

    seen: set[str] = field(default_factory=set)
    kept: list[str] = field(default_factory=list)

    async def __call__(self, envelope: Envelope[Message]) -> None:
        message_id = envelope.headers.message_id
        if message_id not in self.seen:
            self.seen.add(message_id)
            raise PermanentHandlerError("refused once, for the test")
        self.kept.append(message_id)


@dataclass
class Consumers:
    """One consumer per service whose message kind is requeued, each as its own user."""

    handlers: dict[str, FailsOnce]
    buses: list[AmqpBus]


@pytest.fixture
async def consumers(
    provisioned_broker: ProvisionedBroker,  # noqa: F811 - the imported fixture
) -> AsyncIterator[Consumers]:
    plan = {
        # service: (queue, exchange, binding key)
        "strategy": ("tai.strategy.requeue-probe", EVENTS_EXCHANGE, "market.bar.#"),
        "execution": ("tai.execution.requeue-probe", EVENTS_EXCHANGE, ORDER_APPROVED),
        "risk": ("tai.risk.requeue-probe", CONTROL_EXCHANGE, "control.*"),
    }
    handlers: dict[str, FailsOnce] = {}
    buses: list[AmqpBus] = []
    for service, (queue, exchange, key) in plan.items():
        handler = FailsOnce()
        bus = AmqpBus(provisioned_broker.url(service), service, publish_timeout=10.0)
        await bus.subscribe(Subscription(queue, [Binding(key, exchange)], handler))
        await bus.start()
        handlers[service], buses = handler, [*buses, bus]
    yield Consumers(handlers, buses)
    for bus in buses:
        await bus.close()


async def _eventually(check: object, seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_the_gateway_requeues_a_bar_an_approval_and_a_command_to_their_queues(
    provisioned_broker: ProvisionedBroker,  # noqa: F811 - the imported fixture
    consumers: Consumers,
) -> None:
    # Arrange: each kind of message dies once in its consumer's queue
    now = SystemClock().now()
    approval = _approval(ApprovalSigner.from_pem(generate_private_key_pem()), "ord-requeue")
    ingestion = AmqpBus(provisioned_broker.url("ingestion"), "ingestion", publish_timeout=10.0)
    gateway_bus = AmqpBus(provisioned_broker.url("gateway"), "gateway", publish_timeout=10.0)
    await ingestion.start()
    await gateway_bus.start()
    try:
        await ingestion.publish(make_bar(0, 1.1))
        await _publish(provisioned_broker.url("risk"), ORDER_APPROVED, approval)
        await gateway_bus.publish(
            HaltTrading(requested_by="alice", requested_at=now, reason="requeue test")
        )
    finally:
        await ingestion.close()
        await gateway_bus.close()
    operations = AmqpOperations(provisioned_broker.url("gateway"))
    try:

        async def three_dead() -> bool:
            letters = await operations.dead_letters(100)
            return sum(letter.queue.endswith("requeue-probe") for letter in letters) >= 3

        await _eventually(three_dead)
        letters = [
            letter
            for letter in await operations.dead_letters(100)
            if letter.queue.endswith("requeue-probe")
        ]
        # Act: as the gateway's own broker user
        for letter in letters:
            await operations.requeue(letter.message_id)

        async def all_kept() -> bool:
            return all(handler.kept for handler in consumers.handlers.values())

        await _eventually(all_kept)
        remaining = [letter.message_id for letter in await operations.dead_letters(100)]
    finally:
        await operations.close()
    # Assert: back in exactly the queue that refused it, handled, and off the dead letters
    assert {letter.routing_key.split(".")[0] for letter in letters} == {
        "market",
        "order",
        "control",
    }
    for handler in consumers.handlers.values():
        assert handler.kept == sorted(handler.seen)
    assert not {letter.message_id for letter in letters} & set(remaining)


@pytest.mark.parametrize(
    ("exchange", "routing_key"),
    [
        (EVENTS_EXCHANGE, "market.bar.1h.EURUSD"),
        (EVENTS_EXCHANGE, ORDER_APPROVED),
        (EVENTS_EXCHANGE, "execution.fill"),
    ],
)
async def test_the_gateway_user_still_may_not_publish_what_it_requeues(
    provisioned_broker: ProvisionedBroker,  # noqa: F811 - the imported fixture
    exchange: str,
    routing_key: str,
) -> None:
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await _publish_raw(provisioned_broker.url("gateway"), exchange, routing_key, make_bar(0, 1))
