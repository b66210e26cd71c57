"""A dead letter goes back to the queue it died in: headers of the way back, the in-memory bus."""

from __future__ import annotations

import pytest

from tai_bus import InMemoryBus
from tai_bus.api import ORIGINAL_EXCHANGE_HEADER, REQUEUE_MARKER_HEADER, DeadLetter
from tai_events.topics import EVENTS_EXCHANGE, REQUEUE_ROUTING_KEY
from tests.unit.bus.test_bus_memory import Recorder, TickFactory, ticks_subscription

BROKER_DEATH = {
    "message_id": "m-1",
    "type": "TickReceived",
    "x-death": [
        {"queue": "q.again", "reason": "delivery_limit", "exchange": "", "count": 1},
        {"queue": "tai.dead-letter.requeue", "reason": "expired", "exchange": "tai.dead-letter"},
    ],
    "x-first-death-queue": "tai.dead-letter.requeue",
    "x-first-death-reason": "expired",
    "x-delivery-count": 5,
    "CC": ["requeue.request", "q.again"],
    ORIGINAL_EXCHANGE_HEADER: EVENTS_EXCHANGE,
}


def test_a_letter_the_broker_gave_up_on_again_names_its_latest_death() -> None:
    # Act: a requeued message that exceeded its delivery limit once more
    letter = DeadLetter.from_wire("market.tick.EURUSD", BROKER_DEATH, b"{}")
    # Assert
    assert letter.queue == "q.again"
    assert letter.reason == "dead-lettered by the broker: delivery_limit"
    assert letter.exchange == EVENTS_EXCHANGE


def test_the_way_back_carries_the_first_headers_a_route_and_a_marker() -> None:
    # Arrange
    letter = DeadLetter.from_wire("market.tick.EURUSD", BROKER_DEATH, b"{}")
    # Act
    headers = letter.requeue_headers("marker-1")
    # Assert
    assert headers == {
        "message_id": "m-1",
        "type": "TickReceived",
        "CC": [REQUEUE_ROUTING_KEY, "q.again"],
        ORIGINAL_EXCHANGE_HEADER: EVENTS_EXCHANGE,
        REQUEUE_MARKER_HEADER: "marker-1",
    }


def test_a_dead_letter_never_carries_a_route_onto_the_dead_letter_exchange() -> None:
    # Arrange: a requeued message (CC and marker still on it) that dies again
    letter = DeadLetter(
        queue="q.again",
        exchange=EVENTS_EXCHANGE,
        routing_key="market.tick.EURUSD",
        headers={"message_id": "m-1", "CC": [REQUEUE_ROUTING_KEY, "q.again"], "BCC": ["x"]},
        body=b"{}",
        reason="failed again",
    )
    # Act
    headers = letter.wire_headers()
    # Assert: else the requeue queue would take it straight back, forever
    assert "CC" not in headers
    assert "BCC" not in headers


async def test_the_memory_bus_requeues_to_the_failed_queue_only(
    bus: InMemoryBus, tick: TickFactory
) -> None:
    # Arrange: two queues get the tick; only one fails on it
    failing = Recorder(failures=1, error=ValueError("bad tick"))
    healthy = Recorder()
    await bus.subscribe(ticks_subscription("q.failing", failing, delivery_limit=1))
    await bus.subscribe(ticks_subscription("q.healthy", healthy))
    await bus.start()
    await bus.publish(tick(bid=1.0))
    await bus.drain()
    (letter,) = bus.dead_letters
    # Act
    bus.requeue(letter)
    await bus.drain()
    # Assert
    assert failing.bids == [1.0]  # handled on its second chance
    assert healthy.bids == [1.0]  # and not delivered twice to the queue that had it
    assert failing.envelopes[-1].headers.message_id == letter.headers["message_id"]


async def test_the_memory_bus_refuses_to_requeue_into_an_unknown_queue(
    bus: InMemoryBus, tick: TickFactory
) -> None:
    await bus.start()
    letter = DeadLetter("q.gone", EVENTS_EXCHANGE, "market.tick.EURUSD", {}, b"{}", "x")
    with pytest.raises(LookupError, match=r"q\.gone"):
        bus.requeue(letter)
