"""The in-memory bus: routing, ordering, redelivery, dead letters, close, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tai_bus import (
    Binding,
    BusClosedError,
    DeadLetter,
    DeadLetterSubscription,
    InMemoryBus,
    PermanentHandlerError,
    Subscription,
    UnknownExchangeError,
    create_bus,
)
from tai_bus.amqp import AmqpBus
from tai_bus.processing import Delivery, MessageProcessor, Outcome
from tai_core.clock import FakeClock
from tai_events import Envelope, Message, TickReceived
from tai_events.codec import MAX_PAYLOAD_BYTES, make_headers
from tai_events.topics import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    EVENTS_EXCHANGE,
    market_tick,
)
from tai_telemetry import Telemetry
from tests.unit.bus.conftest import T0

TickFactory = Callable[..., TickReceived]


class Recorder:
    """A handler that records what it received and can fail on demand."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.envelopes: list[Envelope[Message]] = []
        self.attempts = 0
        self._failures = failures
        self._error = error or RuntimeError("boom")

    async def __call__(self, envelope: Envelope[Message]) -> None:
        self.attempts += 1
        if self.attempts <= self._failures:
            raise self._error
        self.envelopes.append(envelope)

    @property
    def bids(self) -> list[float]:
        return [envelope.message.bid for envelope in self.envelopes]  # type: ignore[attr-defined]


def ticks_subscription(
    queue: str, handler: Any, pattern: str = "market.tick.*", **options: Any
) -> Subscription:
    return Subscription(queue=queue, bindings=[Binding(pattern)], handler=handler, **options)


async def test_message_is_routed_only_to_queues_whose_binding_matches(
    bus: InMemoryBus, tick: TickFactory
) -> None:
    # Arrange
    euro, sterling = Recorder(), Recorder()
    await bus.subscribe(ticks_subscription("q.euro", euro, market_tick("EURUSD")))
    await bus.subscribe(ticks_subscription("q.sterling", sterling, market_tick("GBPUSD")))
    await bus.start()
    # Act
    sent = await bus.publish(tick("EURUSD"))
    await bus.drain()
    # Assert
    assert [envelope.headers for envelope in euro.envelopes] == [sent]
    assert euro.envelopes[0].message == tick("EURUSD")
    assert euro.envelopes[0].routing_key == "market.tick.EURUSD"
    assert sterling.envelopes == []


async def test_publish_fills_headers_from_producer_clock_and_cause(
    bus: InMemoryBus, tick: TickFactory, clock: FakeClock
) -> None:
    # Arrange
    await bus.start()
    cause = make_headers(tick(), producer="upstream", occurred_at=clock.now())
    # Act
    sent = await bus.publish(tick(), cause=cause)
    # Assert
    assert sent.producer == "tester"
    assert sent.occurred_at == clock.now()
    assert sent.type == "TickReceived"
    assert sent.correlation_id == cause.correlation_id
    assert sent.causation_id == cause.message_id


async def test_messages_of_one_queue_are_handled_in_publish_order(
    bus: InMemoryBus, tick: TickFactory
) -> None:
    # Arrange
    recorder = Recorder()
    await bus.subscribe(ticks_subscription("q.ordered", recorder))
    await bus.start()
    bids = [1.0 + index / 1000 for index in range(200)]
    # Act
    for bid in bids:
        await bus.publish(tick(bid=bid))
    await bus.drain()
    # Assert
    assert recorder.bids == bids


async def test_deterministic_drain_follows_global_publish_order_including_handler_publishes(
    tick: TickFactory, clock: FakeClock
) -> None:
    # Arrange
    bus = InMemoryBus("tester", clock=clock, deterministic=True)
    log: list[str] = []

    async def on_euro(envelope: Envelope[Message]) -> None:
        log.append(f"euro {envelope.message.bid}")  # type: ignore[attr-defined]
        if envelope.message.bid == 1.0:  # type: ignore[attr-defined]
            await bus.publish(tick("GBPUSD", bid=9.0), cause=envelope.headers)

    async def on_sterling(envelope: Envelope[Message]) -> None:
        log.append(f"sterling {envelope.message.bid}")  # type: ignore[attr-defined]

    await bus.subscribe(ticks_subscription("q.euro", on_euro, market_tick("EURUSD")))
    await bus.subscribe(ticks_subscription("q.sterling", on_sterling, market_tick("GBPUSD")))
    await bus.start()
    await bus.publish(tick("GBPUSD", bid=1.5))
    await bus.publish(tick("EURUSD", bid=1.0))
    await bus.publish(tick("GBPUSD", bid=2.5))
    await bus.publish(tick("EURUSD", bid=2.0))
    # Act
    await bus.drain()
    # Assert
    assert log == ["sterling 1.5", "euro 1.0", "sterling 2.5", "euro 2.0", "sterling 9.0"]
    await bus.close()


async def test_deterministic_bus_delivers_nothing_before_drain(
    tick: TickFactory, clock: FakeClock
) -> None:
    # Arrange
    bus = InMemoryBus("tester", clock=clock, deterministic=True)
    recorder = Recorder()
    await bus.subscribe(ticks_subscription("q.lazy", recorder))
    await bus.start()
    # Act
    await bus.publish(tick())
    await asyncio.sleep(0)
    # Assert
    assert recorder.envelopes == []
    await bus.drain()
    assert len(recorder.envelopes) == 1
    await bus.close()


async def test_failed_handler_gets_the_message_again_marked_redelivered(
    bus: InMemoryBus, tick: TickFactory
) -> None:
    # Arrange
    recorder = Recorder(failures=2)
    await bus.subscribe(ticks_subscription("q.flaky", recorder, delivery_limit=5))
    await bus.start()
    # Act
    await bus.publish(tick(bid=1.0))
    await bus.publish(tick(bid=2.0))
    await bus.drain()
    # Assert
    assert recorder.attempts == 4
    assert recorder.bids == [1.0, 2.0]
    assert [envelope.redelivered for envelope in recorder.envelopes] == [True, False]
    assert bus.dead_letters == []


async def test_poison_message_is_dead_lettered_after_the_delivery_limit_with_its_reason(
    bus: InMemoryBus, tick: TickFactory
) -> None:
    # Arrange
    recorder = Recorder(failures=3, error=ValueError("cannot price"))
    await bus.subscribe(ticks_subscription("q.poison", recorder, delivery_limit=3))
    await bus.start()
    # Act
    sent = await bus.publish(tick(bid=1.0))
    await bus.publish(tick(bid=2.0))
    await bus.drain()
    # Assert
    assert recorder.attempts == 4
    assert recorder.bids == [2.0]
    [dead_letter] = bus.dead_letters
    assert dead_letter.reason == "delivery limit 3 reached: ValueError: cannot price"
    assert dead_letter.queue == "q.poison"
    assert dead_letter.exchange == EVENTS_EXCHANGE
    assert dead_letter.routing_key == "market.tick.EURUSD"
    assert dead_letter.headers["message_id"] == sent.message_id
    assert dead_letter.body == tick(bid=1.0).to_json_bytes()


async def test_permanent_handler_error_dead_letters_at_once(
    bus: InMemoryBus, tick: TickFactory
) -> None:
    # Arrange
    recorder = Recorder(failures=1, error=PermanentHandlerError("unknown account 42"))
    await bus.subscribe(ticks_subscription("q.permanent", recorder, delivery_limit=5))
    await bus.start()
    # Act
    await bus.publish(tick(bid=1.0))
    await bus.drain()
    # Assert
    assert recorder.attempts == 1
    assert [dead_letter.reason for dead_letter in bus.dead_letters] == ["unknown account 42"]


def wire_headers(**overrides: object) -> dict[str, object]:
    headers: dict[str, object] = {
        "message_id": "m-1",
        "type": "TickReceived",
        "schema_version": 1,
        "occurred_at": "2024-01-02T09:00:00+00:00",
        "correlation_id": "m-1",
        "producer": "hostile",
    }
    headers.update(overrides)
    return {key: value for key, value in headers.items() if value is not None}


VALID_BODY = (
    b'{"symbol":"EURUSD","quoted_at":"2024-01-02T09:00:00Z","bid":1.1,"ask":1.1002,"source":"test"}'
)


@pytest.mark.parametrize(
    ("headers", "body", "reason_start"),
    [
        pytest.param(
            {}, VALID_BODY, "invalid headers: message_id: Field required", id="no-headers"
        ),
        pytest.param(
            wire_headers(producer="Not Valid!"),
            VALID_BODY,
            "invalid headers: producer",
            id="bad-header",
        ),
        pytest.param(
            wire_headers(traceparent="garbage"),
            VALID_BODY,
            "invalid headers: traceparent",
            id="bad-trace",
        ),
        pytest.param(
            wire_headers(type="Nonexistent"),
            VALID_BODY,
            "unknown message type/version Nonexistent v1",
            id="unknown-type",
        ),
        pytest.param(
            wire_headers(schema_version=99),
            VALID_BODY,
            "unknown message type/version TickReceived v99",
            id="unknown-version",
        ),
        pytest.param(
            wire_headers(),
            b"{not json",
            "invalid TickReceived v1: <payload>: Invalid JSON",
            id="bad-json",
        ),
        pytest.param(wire_headers(), b"\xff\xfe{}", "payload is not valid UTF-8", id="bad-utf8"),
        pytest.param(
            wire_headers(),
            VALID_BODY.replace(b'"bid":1.1', b'"bid":-1'),
            "invalid TickReceived v1: bid: Input should be greater than 0",
            id="schema-violation",
        ),
        pytest.param(
            wire_headers(),
            b" " * (MAX_PAYLOAD_BYTES + 1),
            f"payload of {MAX_PAYLOAD_BYTES + 1} bytes exceeds {MAX_PAYLOAD_BYTES}",
            id="too-large",
        ),
    ],
)
async def test_malformed_message_is_dead_lettered_and_the_next_one_is_still_handled(
    bus: InMemoryBus,
    tick: TickFactory,
    headers: dict[str, object],
    body: bytes,
    reason_start: str,
) -> None:
    # Arrange
    recorder = Recorder()
    await bus.subscribe(ticks_subscription("q.hostile", recorder))
    await bus.start()
    # Act
    await bus.publish_raw(EVENTS_EXCHANGE, "market.tick.EURUSD", body, headers)
    await bus.publish(tick(bid=2.0))
    await bus.drain()
    # Assert
    [dead_letter] = bus.dead_letters
    assert dead_letter.reason.startswith(reason_start), dead_letter.reason
    assert dead_letter.body == body
    assert dead_letter.queue == "q.hostile"
    assert recorder.attempts == 1
    assert recorder.bids == [2.0]


async def test_dead_letters_reach_a_dead_letter_subscription_raw(
    bus: InMemoryBus, tick: TickFactory
) -> None:
    # Arrange
    received: list[DeadLetter] = []

    async def on_dead_letter(dead_letter: DeadLetter) -> None:
        received.append(dead_letter)

    await bus.subscribe(ticks_subscription("q.bad", Recorder()))
    await bus.subscribe_dead_letters(
        DeadLetterSubscription(on_dead_letter, queue="q.observed", routing_keys=("market.tick.*",))
    )
    await bus.start()
    # Act
    await bus.publish_raw(EVENTS_EXCHANGE, "market.tick.EURUSD", b"\xff", wire_headers())
    await bus.drain()
    # Assert
    assert received == bus.dead_letters
    assert received[0].reason.startswith("payload is not valid UTF-8")
    assert received[0].exchange == EVENTS_EXCHANGE
    assert DEAD_LETTER_REASON_HEADER not in received[0].headers


async def test_shared_dead_letter_queue_keeps_dead_letters_until_consumed(
    bus: InMemoryBus, tick: TickFactory
) -> None:
    # Arrange
    received: list[DeadLetter] = []

    async def on_dead_letter(dead_letter: DeadLetter) -> None:
        received.append(dead_letter)

    await bus.subscribe(
        ticks_subscription("q.bad", Recorder(error=PermanentHandlerError("no"), failures=1))
    )
    await bus.start()
    await bus.publish(tick())
    await bus.drain()
    # Act
    await bus.subscribe_dead_letters(DeadLetterSubscription(on_dead_letter))
    await bus.drain()
    # Assert
    assert [dead_letter.reason for dead_letter in received] == ["no"]


async def test_dead_letter_handler_that_keeps_failing_gives_up_without_looping(
    bus: InMemoryBus, tick: TickFactory
) -> None:
    # Arrange
    attempts = 0

    async def on_dead_letter(dead_letter: DeadLetter) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("notifier down")

    await bus.subscribe(ticks_subscription("q.bad", Recorder()))
    await bus.subscribe_dead_letters(DeadLetterSubscription(on_dead_letter, delivery_limit=2))
    await bus.start()
    # Act
    await bus.publish_raw(EVENTS_EXCHANGE, "market.tick.EURUSD", b"{}", {})
    await bus.drain()
    # Assert
    assert attempts == 2
    assert len(bus.dead_letters) == 1


async def test_close_lets_the_in_flight_handler_finish(tick: TickFactory, clock: FakeClock) -> None:
    # Arrange
    bus = InMemoryBus("tester", clock=clock)
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[float] = []

    async def slow(envelope: Envelope[Message]) -> None:
        started.set()
        await release.wait()
        finished.append(envelope.message.bid)  # type: ignore[attr-defined]

    await bus.subscribe(ticks_subscription("q.slow", slow))
    await bus.start()
    await bus.publish(tick(bid=1.0))
    await bus.publish(tick(bid=2.0))
    await started.wait()
    # Act
    closing = asyncio.create_task(bus.close())
    for _ in range(10):
        await asyncio.sleep(0)
    still_waiting = not closing.done()
    release.set()
    await closing
    # Assert
    assert still_waiting
    assert finished == [1.0]
    with pytest.raises(BusClosedError):
        await bus.publish(tick())


async def test_close_during_a_deterministic_drain_waits_for_the_current_handler(
    tick: TickFactory, clock: FakeClock
) -> None:
    # Arrange
    bus = InMemoryBus("tester", clock=clock, deterministic=True)
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[float] = []

    async def slow(envelope: Envelope[Message]) -> None:
        started.set()
        await release.wait()
        finished.append(envelope.message.bid)  # type: ignore[attr-defined]

    await bus.subscribe(ticks_subscription("q.slow", slow))
    await bus.start()
    await bus.publish(tick(bid=1.0))
    await bus.publish(tick(bid=2.0))
    draining = asyncio.create_task(bus.drain())
    await started.wait()
    # Act
    closing = asyncio.create_task(bus.close())
    for _ in range(10):
        await asyncio.sleep(0)
    still_waiting = not closing.done()
    release.set()
    await closing
    await draining
    # Assert
    assert still_waiting
    assert finished == [1.0]


async def test_metrics_count_consumed_failed_published_and_dead_lettered(
    tick: TickFactory, clock: FakeClock
) -> None:
    # Arrange
    telemetry = Telemetry("tester")
    bus = InMemoryBus("tester", clock=clock, telemetry=telemetry, deterministic=True)
    await bus.subscribe(ticks_subscription("q.metrics", Recorder(failures=1), delivery_limit=5))
    await bus.start()
    # Act
    await bus.publish(tick())
    await bus.publish_raw(EVENTS_EXCHANGE, "market.tick.EURUSD", b"{}", {"type": "Junk"})
    await bus.drain()
    await bus.close()

    # Assert
    def sample(name: str, **labels: str) -> float | None:
        return telemetry.registry.get_sample_value(name, labels)

    assert (
        sample("tai_messages_published_total", exchange=EVENTS_EXCHANGE, type="TickReceived") == 1
    )
    assert sample("tai_messages_published_total", exchange=EVENTS_EXCHANGE, type="Junk") == 1
    assert sample("tai_messages_consumed_total", queue="q.metrics", type="TickReceived") == 1
    assert sample("tai_messages_failed_total", queue="q.metrics", type="TickReceived") == 1
    assert sample("tai_messages_dead_lettered_total", queue="q.metrics", reason="undecodable") == 1
    assert sample("tai_handler_latency_seconds_count", queue="q.metrics", type="TickReceived") == 2


async def test_publish_to_an_unknown_exchange_is_refused(bus: InMemoryBus) -> None:
    # Arrange
    await bus.start()
    # Act / Assert
    with pytest.raises(UnknownExchangeError):
        await bus.publish_raw("tai.nowhere", "x", b"{}", {})
    with pytest.raises(UnknownExchangeError):
        await bus.subscribe(Subscription("q.x", [Binding("#", exchange="tai.nowhere")], Recorder()))


async def test_publish_before_start_is_refused(bus: InMemoryBus, tick: TickFactory) -> None:
    # Act / Assert
    with pytest.raises(BusClosedError):
        await bus.publish(tick())


async def test_dead_letter_routing_keeps_the_original_routing_key_and_annotations(
    bus: InMemoryBus, tick: TickFactory
) -> None:
    # Arrange
    raw: list[DeadLetter] = []

    async def on_dead_letter(dead_letter: DeadLetter) -> None:
        raw.append(dead_letter)

    await bus.subscribe(
        ticks_subscription("q.bad", Recorder(error=PermanentHandlerError("bad"), failures=1))
    )
    await bus.subscribe_dead_letters(
        DeadLetterSubscription(on_dead_letter, queue="q.dl", routing_keys=("market.tick.EURUSD",))
    )
    await bus.start()
    # Act
    await bus.publish(tick("EURUSD"))
    await bus.drain()
    # Assert
    wire = raw[0].wire_headers()
    assert wire[DEAD_LETTER_REASON_HEADER] == "bad"
    assert wire[DEAD_LETTER_QUEUE_HEADER] == "q.bad"
    assert raw[0].routing_key == "market.tick.EURUSD"
    assert DEAD_LETTER_EXCHANGE not in raw[0].headers


async def test_a_second_consumer_of_one_queue_on_one_bus_is_refused(bus: InMemoryBus) -> None:
    # Arrange
    await bus.subscribe(ticks_subscription("q.once", Recorder()))
    # Act / Assert
    with pytest.raises(ValueError, match="already has a consumer"):
        await bus.subscribe(ticks_subscription("q.once", Recorder()))


async def test_drain_from_a_handler_is_refused(bus: InMemoryBus, tick: TickFactory) -> None:
    # Arrange
    errors: list[BaseException] = []

    async def reentrant(envelope: Envelope[Message]) -> None:
        try:
            await bus.drain()
        except RuntimeError as error:
            errors.append(error)

    await bus.subscribe(ticks_subscription("q.reentrant", reentrant))
    await bus.start()
    # Act
    await bus.publish(tick())
    await bus.drain()
    # Assert
    assert len(errors) == 1


def test_factory_picks_the_transport_from_the_url(clock: FakeClock) -> None:
    # Act
    memory = create_bus("memory://", "tester", clock=clock, deterministic=True)
    amqp = create_bus("amqp://guest:guest@127.0.0.1:5672/", "tester")
    # Assert
    assert isinstance(memory, InMemoryBus)
    assert memory.deterministic
    assert isinstance(amqp, AmqpBus)
    with pytest.raises(ValueError, match="unsupported"):
        create_bus("kafka://x", "tester")
    with pytest.raises(ValueError, match="deterministic"):
        create_bus("amqp://x", "tester", deterministic=True)


def test_dead_letter_rebuilt_from_a_broker_dead_letter_names_the_broker_reason() -> None:
    # Act
    dead_letter = DeadLetter.from_wire(
        "market.tick.EURUSD",
        {
            "x-first-death-reason": b"delivery_limit",
            "x-first-death-queue": "q.a",
            "type": "TickReceived",
        },
        b"{}",
    )
    # Assert
    assert dead_letter.reason == "dead-lettered by the broker: delivery_limit"
    assert dead_letter.queue == "q.a"
    with pytest.raises(TypeError):
        dead_letter.headers["type"] = "x"  # type: ignore[index]


def _connection_lost(error: BaseException) -> bool:
    return isinstance(error, ConnectionError)


async def test_outage_is_waited_out_in_place_without_spending_the_delivery_limit(
    clock: FakeClock, tick: TickFactory
) -> None:
    # Arrange: the handler's database is down for three attempts; the limit is two deliveries
    bus = InMemoryBus("tester", clock=clock, deterministic=True, is_transient=_connection_lost)
    recorder = Recorder(failures=3, error=ConnectionError("database restarting"))
    await bus.subscribe(ticks_subscription("q.outage", recorder, delivery_limit=2))
    await bus.start()
    # Act
    await bus.publish(tick(bid=1.0))
    await bus.publish(tick(bid=2.0))
    await bus.drain()
    await bus.close()
    # Assert: handled in order, never redelivered, nothing dead-lettered
    assert recorder.attempts == 5
    assert recorder.bids == [1.0, 2.0]
    assert [envelope.redelivered for envelope in recorder.envelopes] == [False, False]
    assert bus.dead_letters == []


async def test_an_error_that_is_no_outage_still_counts_towards_the_delivery_limit(
    clock: FakeClock, tick: TickFactory
) -> None:
    # Arrange
    bus = InMemoryBus("tester", clock=clock, deterministic=True, is_transient=_connection_lost)
    recorder = Recorder(failures=5, error=ValueError("cannot price"))
    await bus.subscribe(ticks_subscription("q.poison", recorder, delivery_limit=2))
    await bus.start()
    # Act
    await bus.publish(tick(bid=1.0))
    await bus.drain()
    await bus.close()
    # Assert
    assert recorder.attempts == 2
    [dead_letter] = bus.dead_letters
    assert dead_letter.reason == "delivery limit 2 reached: ValueError: cannot price"


async def test_an_outage_longer_than_the_patience_counts_as_a_failed_delivery(
    tick: TickFactory,
) -> None:
    # Arrange: a processor that waits at most 0.2 s for its dependency
    recorder = Recorder(failures=100, error=ConnectionError("database gone"))
    processor = MessageProcessor(
        queue="q.gone",
        handler=recorder,
        delivery_limit=5,
        telemetry=None,
        is_transient=_connection_lost,
        outage_patience_seconds=0.2,
    )
    message = tick(bid=1.0)
    headers = make_headers(message, producer="tester", occurred_at=T0)
    delivery = Delivery(
        queue="q.gone",
        exchange=EVENTS_EXCHANGE,
        routing_key="market.tick.EURUSD",
        headers=headers.to_wire(),
        body=message.to_json_bytes(),
        redelivered=False,
        delivery_count=1,
    )
    # Act
    verdict = await processor.process(delivery)
    # Assert: handed back for redelivery (counted), after a few attempts in place
    assert verdict.outcome is Outcome.RETRY
    assert 2 <= recorder.attempts < 100
