"""The outbox relay on SQLite: id order, marks after publishing, failures leave the rest pending."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tai_core.clock import FakeClock
from tai_events import BarClosed, make_headers
from tai_store import OutboxRelay, Store

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


class RecordingPublisher:
    """Records what it publishes; raises on the message number ``fail_at`` (1-based)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.published: list[tuple[str, str, bytes, dict[str, object]]] = []
        self.fail_at = fail_at
        self.calls = 0

    async def __call__(
        self, exchange: str, routing_key: str, body: bytes, headers: dict[str, object]
    ) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise ConnectionError("broker went away")
        self.published.append((exchange, routing_key, body, headers))

    @property
    def message_ids(self) -> list[object]:
        return [headers["message_id"] for _, _, _, headers in self.published]


async def _queue_bars(store: Store, make_bar: Callable[..., BarClosed], count: int) -> list[str]:
    message_ids = []
    async with store.transaction() as unit:
        for offset in range(count):
            bar = make_bar(T0 + timedelta(hours=offset))
            headers = make_headers(
                bar, producer="ingestion", occurred_at=T0, message_id=f"bar-{offset:03d}"
            )
            await unit.outbox.add(bar, headers)
            message_ids.append(headers.message_id)
    return message_ids


async def test_relay_publishes_pending_messages_in_commit_order(
    store: Store, make_bar: Callable[..., BarClosed]
) -> None:
    message_ids = await _queue_bars(store, make_bar, 5)
    publisher = RecordingPublisher()
    clock = FakeClock(T0 + timedelta(minutes=5))
    relay = OutboxRelay(store, publisher, clock=clock)

    published = await relay.publish_pending()
    again = await relay.publish_pending()

    assert (published, again) == (5, 0)
    assert publisher.message_ids == message_ids
    exchange, routing_key, body, headers = publisher.published[0]
    assert (exchange, routing_key) == ("tai.events", "market.bar.1h.EURUSD")
    assert body == make_bar(T0).to_json_bytes()
    assert headers["type"] == "BarClosed"
    async with store.transaction() as unit:
        assert await unit.outbox.count_pending() == 0


async def test_relay_respects_the_limit(store: Store, make_bar: Callable[..., BarClosed]) -> None:
    message_ids = await _queue_bars(store, make_bar, 5)
    publisher = RecordingPublisher()
    relay = OutboxRelay(store, publisher)

    first = await relay.publish_pending(limit=2)
    rest = await relay.publish_pending(limit=10)

    assert (first, rest) == (2, 3)
    assert publisher.message_ids == message_ids


async def test_failure_midway_marks_the_published_and_leaves_the_rest_pending(
    store: Store, make_bar: Callable[..., BarClosed]
) -> None:
    message_ids = await _queue_bars(store, make_bar, 5)
    publisher = RecordingPublisher(fail_at=3)
    relay = OutboxRelay(store, publisher)

    with pytest.raises(ConnectionError, match="broker went away"):
        await relay.publish_pending()
    async with store.transaction() as unit:
        still_pending = [message.message_id for message in await unit.outbox.pending()]
    resumed = await relay.publish_pending()

    assert still_pending == message_ids[2:]
    assert resumed == 3
    assert publisher.message_ids == message_ids


async def test_published_at_comes_from_the_injected_clock(
    store: Store, make_bar: Callable[..., BarClosed]
) -> None:
    await _queue_bars(store, make_bar, 1)
    moment = T0 + timedelta(days=1)
    relay = OutboxRelay(store, RecordingPublisher(), clock=FakeClock(moment))

    await relay.publish_pending()

    async with store.transaction() as unit:
        stored = await unit.outbox.get("bar-000")
    assert stored is not None
    assert stored.published_at == moment


async def test_relay_refuses_a_non_positive_limit(store: Store) -> None:
    relay = OutboxRelay(store, RecordingPublisher())

    with pytest.raises(ValueError, match="limit"):
        await relay.publish_pending(limit=0)
