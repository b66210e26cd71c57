"""Queue statistics by passive declare and dead-letter handling on a real RabbitMQ vhost."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from tai_bus import AmqpBus, Binding, Subscription
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_gateway.operations import (
    AmqpOperations,
    DeadLetterNotFoundError,
    RequeueTargetMissingError,
)

pytestmark = pytest.mark.integration


def _rabbitmqctl(*arguments: str) -> None:
    subprocess.run(
        ["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def vhost_url() -> Iterator[str]:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: cannot create an isolated vhost")
    vhost = f"tai-gateway-ops-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    base = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/").rstrip("/")
    try:
        yield f"{base}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
async def poisoned(vhost_url: str) -> AsyncIterator[tuple[AmqpBus, list[Message]]]:
    """A bus whose consumer received two undecodable messages (now dead letters)."""
    bus = AmqpBus(vhost_url, "test")
    received: list[Message] = []

    async def record(envelope: Envelope[Message]) -> None:
        received.append(envelope.message)

    await bus.subscribe(Subscription("tai.test.poisoned", [Binding("test.poison")], record))
    await bus.start()
    for number in (1, 2):
        await bus.publish_raw(
            "tai.events",
            "test.poison",
            b"not json",
            {"message_id": f"poison-{number}", "type": "FillExecuted"},
        )
    yield bus, received
    await bus.close()


async def _dead_letter_ids(operations: AmqpOperations) -> list[str]:
    return sorted(letter.message_id for letter in await operations.dead_letters(50))


async def _wait_for_dead_letters(operations: AmqpOperations, count: int) -> list[str]:
    import asyncio  # noqa: PLC0415

    for _ in range(200):
        ids = await _dead_letter_ids(operations)
        if len(ids) >= count:
            return ids
        await asyncio.sleep(0.05)
    return await _dead_letter_ids(operations)


async def test_queue_stats_come_from_passive_declares(
    vhost_url: str, poisoned: tuple[AmqpBus, list[Message]]
) -> None:
    operations = AmqpOperations(vhost_url)
    try:
        await _wait_for_dead_letters(operations, 2)
        stats = {
            item.queue: item
            for item in await operations.queue_stats(
                ["tai.test.poisoned", "tai.dead-letter", "tai.does-not-exist"]
            )
        }
    finally:
        await operations.close()
    assert stats["tai.test.poisoned"].consumers == 1
    assert stats["tai.test.poisoned"].messages == 0
    assert stats["tai.dead-letter"].messages == 2
    assert stats["tai.does-not-exist"].messages is None
    assert stats["tai.does-not-exist"].error == "queue does not exist"


async def test_reading_dead_letters_keeps_them_and_requeue_and_discard_settle_one_each(
    vhost_url: str, poisoned: tuple[AmqpBus, list[Message]]
) -> None:
    # Arrange
    operations = AmqpOperations(vhost_url)
    try:
        first = await _wait_for_dead_letters(operations, 2)
        again = await _dead_letter_ids(operations)
        # Act
        discarded = await operations.discard("poison-1")
        requeued = await operations.requeue("poison-2")
        with pytest.raises(DeadLetterNotFoundError):
            await operations.discard("poison-1")
        # the requeued letter fails again in its queue and comes back
        after = await _wait_for_dead_letters(operations, 1)
    finally:
        await operations.close()
    # Assert
    assert first == again == ["poison-1", "poison-2"]
    assert discarded.queue == "tai.test.poisoned"
    assert requeued.reason
    assert after == ["poison-2"]


async def test_a_letter_whose_queue_is_gone_is_not_requeued_and_stays(
    vhost_url: str, poisoned: tuple[AmqpBus, list[Message]]
) -> None:
    # Arrange: the consumer's queue is deleted after its letters died
    operations = AmqpOperations(vhost_url)
    try:
        await _wait_for_dead_letters(operations, 2)
        bus, _ = poisoned
        await bus.close()
        _rabbitmqctl("delete_queue", "-p", vhost_url.rsplit("/", 1)[1], "tai.test.poisoned")
        # Act
        with pytest.raises(RequeueTargetMissingError):
            await operations.requeue("poison-1")
        remaining = await _dead_letter_ids(operations)
    finally:
        await operations.close()
    # Assert: nothing lost, nothing moved
    assert remaining == ["poison-1", "poison-2"]
