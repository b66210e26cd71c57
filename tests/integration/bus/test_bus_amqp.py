"""The RabbitMQ transport against a real broker: confirms, redelivery, dead letters, order."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import DeliveryError
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tai_bus import (
    AmqpBus,
    Binding,
    DeadLetter,
    DeadLetterSubscription,
    PermanentHandlerError,
    Subscription,
)
from tai_events import Envelope, Message, TickReceived
from tai_events.codec import make_headers
from tai_events.topics import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    EVENTS_EXCHANGE,
    market_tick,
)
from tai_telemetry import Telemetry

pytestmark = pytest.mark.integration

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


@dataclass
class Names:
    """Unique names for one test, so tests never see each other's messages."""

    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def symbol(self) -> str:
        return f"T{self.suffix.upper()}"

    def queue(self, purpose: str) -> str:
        return f"test.bus.{self.suffix}.{purpose}"


def make_tick(symbol: str, bid: float = 1.1) -> TickReceived:
    """Return a valid tick for a symbol."""
    return TickReceived(symbol=symbol, quoted_at=T0, bid=bid, ask=bid + 0.0002, source="test")


@pytest.fixture
def amqp_url() -> str:
    """The broker the integration tests use."""
    return os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture
def names() -> Names:
    """Unique queue names and symbol for this test."""
    return Names()


@pytest.fixture
async def admin(amqp_url: str, names: Names) -> AsyncIterator[AbstractChannel]:
    """A plain channel for inspecting the broker; deletes this test's queues at the end."""
    connection: AbstractRobustConnection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    yield channel
    cleanup = await connection.channel()
    for purpose in ("main", "dead", "raw", "shared", "limited"):
        await cleanup.queue_delete(names.queue(purpose))
    await connection.close()


@pytest.fixture
async def make_bus(amqp_url: str, admin: AbstractChannel) -> AsyncIterator[Callable[..., AmqpBus]]:
    """Build AMQP buses that are closed at the end of the test (before queue cleanup)."""
    buses: list[AmqpBus] = []

    def factory(**options: object) -> AmqpBus:
        bus = AmqpBus(amqp_url, "tester", **options)  # type: ignore[arg-type]
        buses.append(bus)
        return bus

    yield factory
    for bus in buses:
        await bus.close()


TIMEOUT = 20.0
"""Upper bound on waiting for the broker, so a broken bus fails instead of hanging."""

BusFactory = Callable[..., AmqpBus]


class Collector:
    """Collects what a handler receives and signals when enough has arrived."""

    def __init__(self, expected: int = 1) -> None:
        self.items: list[Any] = []
        self._expected = expected
        self.complete = asyncio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        if len(self.items) >= self._expected:
            self.complete.set()

    async def wait(self) -> list[Any]:
        await asyncio.wait_for(self.complete.wait(), TIMEOUT)
        return self.items


def subscription(names: Names, handler: Any, **options: Any) -> Subscription:
    return Subscription(
        queue=names.queue("main"),
        bindings=[Binding(market_tick(names.symbol))],
        handler=handler,
        **options,
    )


async def observe_dead_letters(bus: AmqpBus, names: Names, collector: Collector) -> None:
    async def on_dead_letter(dead_letter: DeadLetter) -> None:
        collector.add(dead_letter)

    await bus.subscribe_dead_letters(
        DeadLetterSubscription(
            on_dead_letter, queue=names.queue("dead"), routing_keys=(market_tick(names.symbol),)
        )
    )


async def test_round_trip_keeps_headers_and_sets_amqp_properties(
    make_bus: BusFactory, names: Names, admin: AbstractChannel
) -> None:
    # Arrange
    bus = make_bus()
    received = Collector()

    async def handler(envelope: Envelope[Message]) -> None:
        received.add(envelope)

    await bus.subscribe(subscription(names, handler))
    await bus.start()
    raw_queue = await admin.declare_queue(names.queue("raw"), durable=False)
    await raw_queue.bind(EVENTS_EXCHANGE, market_tick(names.symbol))
    cause = make_headers(make_tick(names.symbol), producer="upstream", occurred_at=T0)
    # Act
    sent = await bus.publish(make_tick(names.symbol), cause=cause)
    [envelope] = await received.wait()
    raw = await raw_queue.get(timeout=TIMEOUT)
    # Assert
    assert envelope.headers == sent
    assert envelope.message == make_tick(names.symbol)
    assert envelope.routing_key == market_tick(names.symbol)
    assert not envelope.redelivered
    assert sent.correlation_id == cause.correlation_id
    assert raw.content_type == "application/json"
    assert raw.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert raw.message_id == sent.message_id
    assert raw.type == "TickReceived"
    assert raw.correlation_id == cause.correlation_id
    assert raw.app_id == "tester"
    assert raw.timestamp is not None
    assert raw.headers["causation_id"] == cause.message_id
    await raw.ack()


async def test_publish_waits_for_the_broker_confirm_and_raises_on_a_nack(
    make_bus: BusFactory, names: Names, admin: AbstractChannel
) -> None:
    # Arrange: a full queue that rejects publishes makes the broker nack the second one.
    bus = make_bus()
    await bus.start()
    full_queue = await admin.declare_queue(
        names.queue("raw"),
        durable=False,
        arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
    )
    await full_queue.bind(EVENTS_EXCHANGE, market_tick(names.symbol))
    # Act
    await bus.publish(make_tick(names.symbol, bid=1.0))
    # Assert
    with pytest.raises(DeliveryError):
        await bus.publish(make_tick(names.symbol, bid=2.0))
    kept = await _get(full_queue)
    assert kept.body == make_tick(names.symbol, bid=1.0).to_json_bytes()
    assert await full_queue.get(fail=False) is None
    await kept.ack()


async def test_failed_handler_gets_the_message_redelivered_then_succeeds(
    make_bus: BusFactory, names: Names
) -> None:
    # Arrange
    bus = make_bus()
    received = Collector()
    attempts: list[bool] = []

    async def flaky(envelope: Envelope[Message]) -> None:
        attempts.append(envelope.redelivered)
        if len(attempts) == 1:
            raise RuntimeError("database unavailable")
        received.add(envelope)

    await bus.subscribe(subscription(names, flaky))
    await bus.start()
    # Act
    sent = await bus.publish(make_tick(names.symbol))
    [envelope] = await received.wait()
    # Assert
    assert attempts == [False, True]
    assert envelope.redelivered
    assert envelope.headers == sent


async def test_poison_message_is_dead_lettered_after_the_delivery_limit_with_its_reason(
    make_bus: BusFactory, names: Names
) -> None:
    # Arrange
    bus = make_bus()
    dead = Collector()
    attempts: list[int] = []

    async def poison(envelope: Envelope[Message]) -> None:
        attempts.append(1)
        raise ValueError("cannot price")

    await bus.subscribe(subscription(names, poison, delivery_limit=3))
    await observe_dead_letters(bus, names, dead)
    await bus.start()
    # Act
    sent = await bus.publish(make_tick(names.symbol))
    [dead_letter] = await dead.wait()
    # Assert
    assert dead_letter.reason == "delivery limit 3 reached: ValueError: cannot price"
    assert dead_letter.queue == names.queue("main")
    assert dead_letter.exchange == EVENTS_EXCHANGE
    assert dead_letter.headers["message_id"] == sent.message_id
    assert dead_letter.body == make_tick(names.symbol).to_json_bytes()
    assert len(attempts) == 3


async def test_permanent_handler_error_is_dead_lettered_at_once(
    make_bus: BusFactory, names: Names
) -> None:
    # Arrange
    bus = make_bus()
    dead = Collector()
    attempts: list[int] = []

    async def refuse(envelope: Envelope[Message]) -> None:
        attempts.append(1)
        raise PermanentHandlerError("unknown account 42")

    await bus.subscribe(subscription(names, refuse))
    await observe_dead_letters(bus, names, dead)
    await bus.start()
    # Act
    await bus.publish(make_tick(names.symbol))
    [dead_letter] = await dead.wait()
    # Assert
    assert dead_letter.reason == "unknown account 42"
    assert attempts == [1]


async def test_undecodable_messages_are_dead_lettered_with_a_reason_and_the_next_is_handled(
    make_bus: BusFactory, names: Names, admin: AbstractChannel
) -> None:
    # Arrange
    bus = make_bus()
    received = Collector()

    async def handler(envelope: Envelope[Message]) -> None:
        received.add(envelope)

    await bus.subscribe(subscription(names, handler))
    await bus.start()
    dead_queue = await admin.declare_queue(names.queue("raw"), durable=False)
    await dead_queue.bind(DEAD_LETTER_EXCHANGE, market_tick(names.symbol))
    valid_headers: dict[str, object] = dict(
        make_headers(make_tick(names.symbol), producer="x", occurred_at=T0).to_wire()
    )
    # Act
    await bus.publish_raw(EVENTS_EXCHANGE, market_tick(names.symbol), b"\xff\xfe", valid_headers)
    await bus.publish_raw(
        EVENTS_EXCHANGE, market_tick(names.symbol), b"{}", {**valid_headers, "type": "Nonexistent"}
    )
    await bus.publish(make_tick(names.symbol, bid=2.0))
    [envelope] = await received.wait()
    reasons = []
    for _ in range(2):
        raw = await _get(dead_queue)
        reasons.append(raw.headers[DEAD_LETTER_REASON_HEADER])
        assert raw.headers[DEAD_LETTER_QUEUE_HEADER] == names.queue("main")
        await raw.ack()
    # Assert
    assert envelope.message.bid == 2.0
    assert str(reasons[0]).startswith("payload is not valid UTF-8")
    assert reasons[1] == "unknown message type/version Nonexistent v1"


async def _get(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    # queue.get does not wait for a message to arrive: poll the broker until one does.
    for _ in range(int(TIMEOUT / 0.05)):
        message = await queue.get(fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"no message arrived on {queue.name}")


async def test_order_of_one_queue_is_preserved_for_500_messages(
    make_bus: BusFactory, names: Names
) -> None:
    # Arrange
    bus = make_bus()
    received = Collector(expected=500)

    async def handler(envelope: Envelope[Message]) -> None:
        received.add(envelope.message.bid)  # type: ignore[attr-defined]

    await bus.subscribe(subscription(names, handler))
    await bus.start()
    bids = [1.0 + index / 10_000 for index in range(500)]
    # Act
    for bid in bids:
        await bus.publish(make_tick(names.symbol, bid=bid))
    # Assert
    assert await received.wait() == bids


async def test_close_lets_the_in_flight_handler_finish(make_bus: BusFactory, names: Names) -> None:
    # Arrange
    bus = make_bus()
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[float] = []

    async def slow(envelope: Envelope[Message]) -> None:
        started.set()
        await release.wait()
        finished.append(envelope.message.bid)  # type: ignore[attr-defined]

    await bus.subscribe(subscription(names, slow))
    await bus.start()
    await bus.publish(make_tick(names.symbol, bid=1.0))
    await bus.publish(make_tick(names.symbol, bid=2.0))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    # Act
    closing = asyncio.create_task(bus.close())
    for _ in range(20):
        await asyncio.sleep(0)
    still_waiting = not closing.done()
    release.set()
    await asyncio.wait_for(closing, TIMEOUT)
    # Assert
    assert still_waiting
    assert finished == [1.0]


async def test_single_active_consumer_fails_over_when_the_active_one_closes(
    make_bus: BusFactory, names: Names
) -> None:
    # Arrange
    first_bus, second_bus = make_bus(connection_name="first"), make_bus(connection_name="second")
    first, second = Collector(expected=3), Collector()

    async def on_first(envelope: Envelope[Message]) -> None:
        first.add(envelope.message.bid)  # type: ignore[attr-defined]

    async def on_second(envelope: Envelope[Message]) -> None:
        second.add(envelope.message.bid)  # type: ignore[attr-defined]

    await first_bus.subscribe(subscription(names, on_first, single_active_consumer=True))
    await first_bus.start()
    await second_bus.subscribe(subscription(names, on_second, single_active_consumer=True))
    await second_bus.start()
    # Act
    for bid in (1.0, 2.0, 3.0):
        await first_bus.publish(make_tick(names.symbol, bid=bid))
    active_got = await first.wait()
    await first_bus.close()
    await second_bus.publish(make_tick(names.symbol, bid=4.0))
    standby_got = await second.wait()
    # Assert
    assert active_got == [1.0, 2.0, 3.0]
    assert standby_got == [4.0]


async def test_message_published_by_a_handler_continues_the_publishers_trace(
    make_bus: BusFactory, names: Names
) -> None:
    # Arrange
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry("tester", tracer_provider=provider)
    bus = make_bus(telemetry=telemetry)
    relayed = Collector()
    relay_symbol = f"{names.symbol}R"

    async def relay(envelope: Envelope[Message]) -> None:
        await bus.publish(make_tick(relay_symbol), cause=envelope.headers)

    async def record(envelope: Envelope[Message]) -> None:
        relayed.add(envelope)

    await bus.subscribe(subscription(names, relay))
    await bus.subscribe(
        Subscription(names.queue("shared"), [Binding(market_tick(relay_symbol))], record)
    )
    await bus.start()
    # Act
    with telemetry.tracer().start_as_current_span("ingest") as publisher_span:
        await bus.publish(make_tick(names.symbol))
    [envelope] = await relayed.wait()
    await bus.close()  # the relay's handler has returned: its metrics are final
    # Assert
    trace_id = format(publisher_span.get_span_context().trace_id, "032x")
    assert envelope.headers.traceparent.split("-")[1] == trace_id
    assert (
        telemetry.registry.get_sample_value(
            "tai_messages_consumed_total", {"queue": names.queue("main"), "type": "TickReceived"}
        )
        == 1
    )


async def test_acks_sent_together_leave_nothing_behind_and_never_cover_a_retried_message(
    make_bus: BusFactory, names: Names, admin: AbstractChannel
) -> None:
    # Arrange: the handler holds the first message until the whole burst is waiting (so
    # acks go out in batches); the 100th message fails once and is requeued
    bus = make_bus()
    bids = [1.0 + index / 10_000 for index in range(300)]
    received = Collector(expected=300)
    failed: list[float] = []
    burst_sent = asyncio.Event()

    async def handler(envelope: Envelope[Message]) -> None:
        await burst_sent.wait()
        bid = envelope.message.bid  # type: ignore[attr-defined]
        if bid == bids[99] and not failed:
            failed.append(bid)
            raise RuntimeError("transient")
        received.add(bid)

    await bus.subscribe(subscription(names, handler))
    await bus.start()
    # Act
    for bid in bids:
        await bus.publish(make_tick(names.symbol, bid=bid))
    burst_sent.set()
    handled = await received.wait()
    await bus.close()
    # Assert: every message handled once (the retried one too); none left in the queue
    assert sorted(handled) == bids
    assert failed == [bids[99]]
    queue = await admin.declare_queue(names.queue("main"), passive=True)
    assert queue.declaration_result.message_count == 0
