"""On the real RabbitMQ with broker-setup's users: the gateway user may publish exactly what the
gateway sends — its refusal alerts and ModelPromoted on ``tai.events`` (model promote/rollback),
HaltTrading/ResumeTrading/FlattenPositions/ConfigureStrategy on ``tai.control`` — and nothing
else: not ``order.approved``, not a control command nobody consumes.
"""

from __future__ import annotations

import aio_pika
import aiormq
import pytest

from tai_bus.amqp import AmqpBus
from tai_core.clock import SystemClock
from tai_events import Message
from tai_events.alerts import AlertRaised, Severity
from tai_events.codec import encode, make_headers
from tai_events.control import ConfigureStrategy, FlattenPositions, HaltTrading, ResumeTrading
from tai_events.market import Timeframe
from tai_events.ml import ModelPromoted
from tai_events.topics import CONTROL_EXCHANGE, EVENTS_EXCHANGE, ORDER_APPROVED
from tests.integration.risk.conftest import (
    ProvisionedBroker,
    provisioned_broker,  # noqa: F401 - the fixture, shared with the risk broker tests
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _gateway_messages() -> list[Message]:
    """One of each message the gateway publishes (control.py and alerts.py)."""
    now = SystemClock().now()
    common = {"requested_by": "alice", "requested_at": now, "reason": "broker test"}
    return [
        ModelPromoted(
            model_id="m-2",
            model_name="xgb",
            symbol="EURUSD",
            timeframe=Timeframe.H1,
            artifact_sha256="0" * 64,
            previous_model_id="m-1",
            promoted_at=now,
            promoted_by="alice",
        ),
        AlertRaised(
            severity=Severity.WARNING,
            source="gateway",
            code="control_denied",
            message="refused halt_trading by role from victor (api)",
            raised_at=now,
        ),
        HaltTrading(**common),
        ResumeTrading(**common),
        FlattenPositions(**common, symbol="EURUSD"),
        ConfigureStrategy(**common, strategy="sma_cross", enabled=False),
    ]


async def test_the_gateway_user_may_publish_every_message_the_gateway_sends(
    provisioned_broker: ProvisionedBroker,  # noqa: F811 - the imported fixture
) -> None:
    # Act: the bus the gateway runs on, as the gateway user; publish waits for the confirm
    bus = AmqpBus(provisioned_broker.url("gateway"), "gateway", publish_timeout=10.0)
    await bus.start()
    try:
        for message in _gateway_messages():
            headers = await bus.publish(message)
            # Assert: confirmed (a refused publish raises ChannelAccessRefused here)
            assert headers.type == message.message_type()
    finally:
        await bus.close()


async def _publish_raw(url: str, exchange_name: str, routing_key: str, message: Message) -> None:
    """Publish as a given user with publisher confirms (errors surface here)."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(exchange_name, ensure=False)
        headers = make_headers(message, producer="test", occurred_at=SystemClock().now())
        await exchange.publish(
            aio_pika.Message(encode(message), headers=dict(headers.to_wire())),
            routing_key=routing_key,
        )
        # a refused publish closes the channel asynchronously: a second round trip sees it
        await channel.declare_exchange(exchange_name, passive=True)


@pytest.mark.parametrize(
    ("exchange", "routing_key"),
    [
        (EVENTS_EXCHANGE, ORDER_APPROVED),
        (EVENTS_EXCHANGE, "order.requested"),
        (EVENTS_EXCHANGE, "model.promoted.extra"),
        (CONTROL_EXCHANGE, "control.shutdown"),
    ],
)
async def test_the_gateway_user_may_not_publish_anything_else(
    provisioned_broker: ProvisionedBroker,  # noqa: F811 - the imported fixture
    exchange: str,
    routing_key: str,
) -> None:
    message = _gateway_messages()[0]
    # the same user and message pass with the gateway's own routing key ...
    await _publish_raw(
        provisioned_broker.url("gateway"), EVENTS_EXCHANGE, "model.promoted", message
    )
    # ... and are refused by the broker with any other
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await _publish_raw(provisioned_broker.url("gateway"), exchange, routing_key, message)
