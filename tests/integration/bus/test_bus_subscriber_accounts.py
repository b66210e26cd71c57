"""On the real RabbitMQ, as an outside system would: a subscriber account from broker-setup.

The subscriber's client is plain ``pika`` (not the project's bus): it consumes bars, fills and
positions and validates each against the published JSON Schemas in ``proto/``; its publishes,
its reads of approvals and its reach outside ``ext.<name>.*`` are refused; it replays the
history stream from the first message, an offset and a timestamp; removing it revokes it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import jsonschema
import pika
import pika.exceptions
import pytest

from tai_bus.amqp import AmqpBus
from tai_bus.provisioning import (
    BrokerLayout,
    HistoryRetention,
    RabbitmqctlAdministrator,
    Subscriber,
    deprovision,
    provision,
    revoke_subscriber,
)
from tai_core.clock import SystemClock
from tai_core.signing import ApprovalSigner, generate_private_key_pem
from tai_events import Message
from tai_events.orders import PositionUpdated
from tai_events.topics import EVENTS_EXCHANGE, HISTORY_STREAM, ORDER_APPROVED
from tests.factories import REPOSITORY_ROOT, make_bar, make_fill
from tests.integration.risk.conftest import AMQP_BASE
from tests.integration.risk.test_risk_broker_security import _approval

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PROTO = REPOSITORY_ROOT / "proto" / "schemas"
FEED_KEYS = ("market.bar.#", "execution.fill", "position.updated")
RETENTION = HistoryRetention(max_age="2D", max_bytes=200_000_000, segment_bytes=10_000_000)


@dataclass(frozen=True)
class Broker:
    """A throwaway vhost with the services and two subscribers, as broker-setup makes them."""

    layout: BrokerLayout
    passwords: dict[str, str]

    def url(self, user: str) -> str:
        """Return the AMQP URL of a broker user."""
        base = urllib.parse.urlsplit(AMQP_BASE)
        password = self.passwords[user]
        credentials = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}"
        vhost = urllib.parse.quote(self.layout.vhost, safe="")
        return f"{base.scheme}://{credentials}@{base.hostname}:{base.port or 5672}/{vhost}"

    def subscriber(self, name: str) -> pika.BlockingConnection:
        """Connect as an outside subscriber, with plain pika."""
        return pika.BlockingConnection(
            pika.URLParameters(self.url(self.layout.subscriber_user(name)))
        )


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: cannot provision an isolated vhost")
    tag = uuid.uuid4().hex[:10]
    layout = BrokerLayout(
        vhost=f"tai-subscribers-it-{tag}",
        user_prefix=f"tai-it{tag}-",
        subscribers=(Subscriber("acme"), Subscriber("desk", FEED_KEYS)),
        history=RETENTION,
    )
    passwords = {user: secrets.token_urlsafe(24) for user in layout.users()}
    administrator = RabbitmqctlAdministrator()
    try:
        provision(administrator, layout, passwords)
        yield Broker(layout, passwords)
    finally:
        deprovision(administrator, layout)


def _position() -> PositionUpdated:
    return PositionUpdated(
        symbol="EURUSD",
        quantity=1000.0,
        average_price=1.1,
        realized_pnl=0.0,
        unrealized_pnl=1.5,
        mark_price=1.1015,
        updated_at=SystemClock().now(),
    )


def _publish_as(broker: Broker, service: str, messages: list[Message]) -> None:
    """Publish through the project's bus as a service user (waits for each confirm)."""

    async def run() -> None:
        bus = AmqpBus(broker.url(broker.layout.user(service)), service, publish_timeout=10.0)
        await bus.start()
        try:
            for message in messages:
                await bus.publish(message)
        finally:
            await bus.close()

    asyncio.run(run())


def _drain(
    channel: pika.adapters.blocking_connection.BlockingChannel,
    queue: str,
    *,
    expected: int,
    arguments: dict[str, object] | None = None,
) -> list[tuple[dict[str, object], bytes]]:
    """Consume until ``expected`` messages arrived or the queue stays quiet for 3 s."""
    received: list[tuple[dict[str, object], bytes]] = []
    for method, properties, body in channel.consume(
        queue, arguments=arguments, inactivity_timeout=3.0
    ):
        if method is None:
            break
        channel.basic_ack(method.delivery_tag)
        received.append((dict(properties.headers or {}), body))
        if len(received) >= expected:
            break
    channel.cancel()
    return received


def _validate(headers: dict[str, object], body: bytes) -> str:
    """Validate a message against proto/ by its type and schema_version headers."""
    message_type = str(headers["type"])
    schema = json.loads(
        (PROTO / f"{message_type}.v{headers['schema_version']}.json").read_text(encoding="utf-8")
    )
    jsonschema.Draft202012Validator(schema).validate(json.loads(body))
    assert headers["message_id"]  # the key a subscriber de-duplicates on
    return message_type


def _refused(action: object) -> pika.exceptions.ChannelClosedByBroker:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        action()  # type: ignore[operator]
    assert refused.value.reply_code == 403, refused.value
    return refused.value


def test_a_subscriber_consumes_bars_fills_and_positions_that_match_proto(broker: Broker) -> None:
    # Arrange: the subscriber's own queue, bound to the keys it is allowed
    connection = broker.subscriber("desk")
    channel = connection.channel()
    channel.queue_declare("ext.desk.feed", durable=True)
    for key in FEED_KEYS:
        channel.queue_bind("ext.desk.feed", EVENTS_EXCHANGE, routing_key=key)
    # Act: the services publish as they do in production
    _publish_as(broker, "ingestion", [make_bar(0, 1.1), make_bar(1, 1.2)])
    _publish_as(broker, "execution", [make_fill(1, SystemClock().now()), _position()])
    received = _drain(channel, "ext.desk.feed", expected=4)
    connection.close()
    # Assert
    assert sorted(_validate(headers, body) for headers, body in received) == [
        "BarClosed",
        "BarClosed",
        "FillExecuted",
        "PositionUpdated",
    ]


def test_a_subscriber_cannot_publish_anywhere(broker: Broker) -> None:
    connection = broker.subscriber("acme")
    channel = connection.channel()
    channel.queue_declare("ext.acme.mine", durable=True)
    channel.confirm_delivery()
    for exchange, key in (
        (EVENTS_EXCHANGE, "market.bar.1h.EURUSD"),
        (EVENTS_EXCHANGE, ORDER_APPROVED),
        ("tai.control", "control.halt"),
        ("", "ext.acme.mine"),  # the default exchange, even into its own queue
    ):
        refused = _refused(lambda: channel.basic_publish(exchange, key, b"{}"))  # noqa: B023
        assert "ACCESS_REFUSED" in str(refused)
        channel = connection.channel()
        channel.confirm_delivery()
    connection.close()


@pytest.mark.parametrize("key", [ORDER_APPROVED, "order.*", "order.#", "#", "*.approved"])
def test_a_subscriber_cannot_bind_to_approvals(broker: Broker, key: str) -> None:
    connection = broker.subscriber("acme")
    channel = connection.channel()
    channel.queue_declare("ext.acme.approvals", durable=True)
    _refused(lambda: channel.queue_bind("ext.acme.approvals", EVENTS_EXCHANGE, routing_key=key))
    connection.close()


def test_a_restricted_subscriber_binds_inside_its_topics_only(broker: Broker) -> None:
    connection = broker.subscriber("desk")
    channel = connection.channel()
    channel.queue_declare("ext.desk.narrow", durable=True)
    channel.queue_bind("ext.desk.narrow", EVENTS_EXCHANGE, routing_key="market.bar.1h.EURUSD")
    _refused(lambda: channel.queue_bind("ext.desk.narrow", EVENTS_EXCHANGE, "market.tick.EURUSD"))
    connection.close()


@pytest.mark.parametrize(
    "attempt",
    [
        "declare another subscriber's queue",
        "declare a service queue",
        "read the approvals queue",
        "read the history without every topic",
    ],
)
def test_a_subscriber_stays_inside_its_own_queues(broker: Broker, attempt: str) -> None:
    connection = broker.subscriber("desk")
    channel = connection.channel()
    actions = {
        "declare another subscriber's queue": lambda: channel.queue_declare("ext.acme.stolen"),
        "declare a service queue": lambda: channel.queue_declare("tai.risk.orders-probe"),
        "read the approvals queue": lambda: channel.basic_get("tai.execution.approvals"),
        "read the history without every topic": lambda: channel.basic_consume(
            HISTORY_STREAM, lambda *_: None, arguments={"x-stream-offset": "first"}
        ),
    }
    _refused(actions[attempt])
    connection.close()


def test_a_subscriber_replays_the_history_from_first_offset_and_timestamp(broker: Broker) -> None:
    # Arrange: public events before and after a moment, and an approval (never in the history)
    approval = _approval(ApprovalSigner.from_pem(generate_private_key_pem()), "ord-history")
    _publish_as(broker, "ingestion", [make_bar(index, 1.1) for index in range(10, 13)])
    _publish_as(broker, "risk", [approval])
    time.sleep(1.5)  # stream chunks carry second-resolution timestamps: a clear boundary
    moment = datetime.now(tz=UTC).replace(microsecond=0)
    time.sleep(1.0)
    _publish_as(broker, "ingestion", [make_bar(index, 1.1) for index in range(20, 22)])
    connection = broker.subscriber("acme")
    channel = connection.channel()
    channel.basic_qos(prefetch_count=100)  # a stream consumer must set a prefetch
    # Act
    everything = _drain(
        channel, HISTORY_STREAM, expected=10_000, arguments={"x-stream-offset": "first"}
    )
    from_offset = _drain(
        channel, HISTORY_STREAM, expected=10_000, arguments={"x-stream-offset": len(everything) - 2}
    )
    since = _drain(channel, HISTORY_STREAM, expected=10_000, arguments={"x-stream-offset": moment})
    connection.close()
    # Assert: every public event is there, in order; no approval ever is
    ids = [str(headers["message_id"]) for headers, _ in everything]
    types = {_validate(headers, body) for headers, body in everything}
    assert "OrderApproved" not in types
    assert len(ids) == len(set(ids)) >= 5
    assert [str(headers["message_id"]) for headers, _ in from_offset] == ids[-2:]
    offsets = [int(str(headers["x-stream-offset"])) for headers, _ in everything]
    assert offsets == sorted(offsets)  # each delivery names its offset, to resume from
    assert int(str(from_offset[0][0]["x-stream-offset"])) == len(everything) - 2
    opened = [json.loads(body)["opened_at"] for _, body in since]
    assert opened == [
        make_bar(index, 1.1).opened_at.isoformat().replace("+00:00", "Z") for index in (20, 21)
    ]


def test_removing_a_subscriber_closes_its_connection_and_locks_it_out(broker: Broker) -> None:
    # Arrange: a second, throwaway subscriber with an open connection and a queue
    layout = replace(broker.layout, subscribers=(*broker.layout.subscribers, Subscriber("leaver")))
    user = layout.subscriber_user("leaver")
    passwords = {**broker.passwords, user: secrets.token_urlsafe(24)}
    administrator = RabbitmqctlAdministrator()
    provision(administrator, layout, passwords)
    leaver = Broker(layout, passwords)
    connection = leaver.subscriber("leaver")
    channel = connection.channel()
    channel.queue_declare("ext.leaver.feed", durable=True)
    # Act
    deleted = revoke_subscriber(administrator, layout, "leaver")
    # Assert
    assert deleted == ["ext.leaver.feed"]
    with pytest.raises(pika.exceptions.AMQPError):  # the broker closed the connection
        channel.queue_declare("ext.leaver.again")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        leaver.subscriber("leaver")


def test_the_history_keeps_events_by_the_configured_age_and_size(broker: Broker) -> None:
    # Act: what the broker itself reports for the stream and its policy
    queues = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", broker.layout.vhost, "name", "type", "policy"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    policies = json.loads(
        subprocess.run(
            [
                "rabbitmqctl",
                "-q",
                "list_policies",
                "-p",
                broker.layout.vhost,
                "--formatter",
                "json",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    # Assert
    assert f"{HISTORY_STREAM}\tstream\ttai-history" in queues
    (policy,) = [item for item in policies if item["name"] == "tai-history"]
    definition = policy["definition"]
    if isinstance(definition, str):
        definition = json.loads(definition)
    assert definition == {
        "max-age": "2D",
        "max-length-bytes": 200_000_000,
        "stream-max-segment-size-bytes": 10_000_000,
    }
