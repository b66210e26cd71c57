"""Malformed and hostile messages on every queue: each dead-lettered with a reason, valid traffic
unaffected, no service stops (in-memory bus: the same delivery code as the RabbitMQ transport).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tai_bus import Binding, Subscription, topic_matches
from tai_events import Envelope, HaltTrading, Message, OrderStatusChanged
from tai_events.codec import make_headers
from tai_events.orders import OrderState
from tai_events.topics import CONTROL_EXCHANGE, EVENTS_EXCHANGE
from tests.fuzz.hostile import Hostile, Sample, hostile_messages
from tests.fuzz.pipeline_harness import MemoryPipeline, memory_pipeline

pytestmark = pytest.mark.integration

BARS = 150
SAMPLED_TYPES = (
    "BarClosed",
    "OrderRequested",
    "OrderApproved",
    "FillExecuted",
    "OrderStatusChanged",
    "HaltTrading",
)


def service_queues(pipeline: MemoryPipeline, hostile: Hostile | Sample) -> set[str]:
    """Return the service queues bound to where a message was sent."""
    subscriptions = [
        *pipeline.strategy.subscriptions(),
        *pipeline.risk.subscriptions(),
        *pipeline.execution.subscriptions(),
    ]
    return {
        subscription.queue
        for subscription in subscriptions
        for binding in subscription.bindings
        if binding.exchange == hostile.exchange
        and topic_matches(binding.routing_key, hostile.routing_key)
    }


async def _collect_samples(pipeline: MemoryPipeline) -> list[Sample]:
    """Replay the bars and keep the first valid message of every type the services consume."""
    seen: dict[str, Sample] = {}

    async def keep(envelope: Envelope[Message]) -> None:
        sample = Sample.of(envelope.message, envelope.headers)
        if service_queues(pipeline, sample):
            seen.setdefault(envelope.headers.type, sample)

    await pipeline.bus.subscribe(Subscription("test.every-event", [Binding("#")], keep))
    await pipeline.replay()
    now = pipeline.ingestion.clock.now()
    # Risk consumes only the order states that release exposure; a short replay may cancel none.
    cancelled = OrderStatusChanged(
        order_id="ord-fuzz-sample",
        symbol="EURUSD",
        state=OrderState.CANCELLED,
        previous_state=OrderState.SUBMITTED,
        filled_quantity=0.0,
        remaining_quantity=1000.0,
        reason="sample",
        changed_at=now,
    )
    halt = HaltTrading(requested_by="fuzz", requested_at=now)
    for command in (cancelled, halt):
        seen.setdefault(
            command.message_type(),
            Sample.of(command, make_headers(command, producer="fuzz", occurred_at=now)),
        )
    return [seen[name] for name in SAMPLED_TYPES]


async def _fills(pipeline: MemoryPipeline) -> list[tuple[object, ...]]:
    async with pipeline.store.transaction() as unit:
        return [
            (fill.fill_id, fill.order_id, fill.side, fill.quantity, fill.price, fill.filled_at)
            for fill in await unit.fills.list()
        ]


class _Session:
    """A pipeline on its own event loop that hypothesis examples drive one by one."""

    def __init__(self, directory: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self._context = memory_pipeline(directory, bars=BARS)
        self.pipeline = self.loop.run_until_complete(self._context.__aenter__())
        self.samples = self.loop.run_until_complete(_collect_samples(self.pipeline))

    def close(self) -> None:
        self.loop.run_until_complete(self._context.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture(scope="module")
def session() -> Iterator[_Session]:
    with tempfile.TemporaryDirectory(prefix="tai-fuzz-") as directory:
        running = _Session(Path(directory))
        try:
            yield running
        finally:
            running.close()


@pytest.fixture(scope="module")
def clean_fills(session: _Session) -> list[tuple[object, ...]]:
    """Return the fills of the session's clean replay (taken before any hostile message)."""
    return session.loop.run_until_complete(_fills(session.pipeline))


def test_samples_cover_every_consumed_type(session: _Session) -> None:
    assert [type(sample.message).__name__ for sample in session.samples] == list(SAMPLED_TYPES)
    assert {sample.exchange for sample in session.samples} == {EVENTS_EXCHANGE, CONTROL_EXCHANGE}


def test_every_hostile_message_is_dead_lettered_by_every_queue_with_a_reason(
    session: _Session, clean_fills: list[tuple[object, ...]]
) -> None:
    pipeline = session.pipeline
    recorded = pipeline.recorded

    @settings(
        max_examples=400,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(hostile=hostile_messages(session.samples))
    def check(hostile: Hostile) -> None:
        # Arrange
        before = (
            len(recorded.dead_letters),
            len(recorded.approvals),
            len(recorded.fills),
            len(recorded.alerts),
        )
        expected = service_queues(pipeline, hostile)

        # Act
        async def deliver() -> None:
            await pipeline.bus.publish_raw(
                hostile.exchange, hostile.routing_key, hostile.body, hostile.headers
            )
            await pipeline.bus.drain()

        session.loop.run_until_complete(deliver())

        # Assert: every service queue it reached dead-lettered it, saying why; nothing else
        letters = recorded.dead_letters[before[0] :]
        by_service = [letter for letter in letters if letter.queue.startswith("tai.")]
        assert expected, hostile.kind
        assert sorted(letter.queue for letter in by_service) == sorted(expected), hostile.kind
        assert all(letter.reason.strip() for letter in letters), hostile.kind
        assert all(letter.body == hostile.body for letter in letters)
        after = (len(recorded.approvals), len(recorded.fills), len(recorded.alerts))
        assert after == before[1:], hostile.kind

    check()

    # No service stopped and the ledger did not move.
    assert all(app.ready() for app in (pipeline.strategy, pipeline.risk, pipeline.execution))
    assert session.loop.run_until_complete(_fills(pipeline)) == clean_fills


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_valid_traffic_among_hostile_messages_trades_exactly_as_without_them(
    session: _Session, clean_fills: list[tuple[object, ...]], data: st.DataObject
) -> None:
    # Arrange: after every 10th bar, a burst of hostile messages on every queue
    bursts = data.draw(
        st.lists(
            st.lists(hostile_messages(session.samples), min_size=1, max_size=6),
            min_size=BARS // 10,
            max_size=BARS // 10,
        )
    )

    async def run(directory: Path) -> tuple[list[tuple[object, ...]], int]:
        async with memory_pipeline(directory, bars=BARS) as pipeline:
            published = 0

            async def interleave(_bar: object) -> None:
                nonlocal published
                await pipeline.bus.drain()
                published += 1
                if published % 10 == 0:
                    for hostile in bursts[published // 10 - 1]:
                        await pipeline.bus.publish_raw(
                            hostile.exchange, hostile.routing_key, hostile.body, hostile.headers
                        )
                    await pipeline.bus.drain()

            await pipeline.ingestion.replay(pipeline.ingestion.load(), after_bar=interleave)
            return await _fills(pipeline), len(pipeline.recorded.dead_letters)

    # Act
    with tempfile.TemporaryDirectory(prefix="tai-fuzz-") as directory:
        loop = asyncio.new_event_loop()
        try:
            fills, dead_letters = loop.run_until_complete(run(Path(directory)))
        finally:
            loop.close()

    # Assert
    assert fills == clean_fills
    assert dead_letters >= sum(len(burst) for burst in bursts)
