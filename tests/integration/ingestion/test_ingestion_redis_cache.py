"""Live polling caches the latest bars and quotes in the real Redis, with their TTLs."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tai_bus.api import Binding, Subscription
from tai_bus.memory import InMemoryBus
from tai_core.clock import FakeClock
from tai_events.market import BarClosed, TickReceived, Timeframe
from tai_ingestion.app import IngestionApp, create_app
from tai_ingestion.config import IngestionSettings, SourceName
from tai_ingestion.factory import Connectors
from tai_ingestion.pipeline import quote_key
from tai_store import Store
from tai_store.cache import RedisCache
from tai_telemetry.metrics import Telemetry
from tests.unit.ingestion.conftest import Recorder
from tests.unit.ingestion.live_fakes import IgRestStub, ManualTimer, eventually, market_price

pytestmark = pytest.mark.integration

MINUTE = timedelta(minutes=1)
TEN = datetime(2024, 1, 8, 10, 0, tzinfo=UTC)


@pytest.fixture
def redis_url() -> str:
    # A database of its own on the configured server; keys also live under a unique prefix.
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return urlsplit(base)._replace(path="/15").geturl()


@pytest.fixture
async def inspector(redis_url: str) -> AsyncIterator[RedisCache]:
    cache = RedisCache(redis_url, prefix=f"tai-test-ingestion:{uuid.uuid4().hex}:")
    yield cache
    await cache.clear()
    await cache.close()


@pytest.fixture
async def bus(clock: FakeClock) -> AsyncIterator[InMemoryBus]:
    async with InMemoryBus("ingestion", clock=clock) as memory_bus:
        yield memory_bus


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(TEN)


async def polling_app(
    tmp_path: Path,
    name: str,
    bus: InMemoryBus,
    clock: FakeClock,
    timer: ManualTimer,
    **settings: Any,
) -> tuple[IngestionApp, Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}")
    await store.migrate()
    app = create_app(
        IngestionSettings(
            symbol="EURUSD",
            timeframe=Timeframe.M1,
            poll_enabled=True,
            sources=[SourceName.IG],
            ig_api_key="key",
            ig_identifier="user",
            ig_password="secret",
            http_backoff_seconds=0,
            bar_cache_ttl_seconds=3600,
            quote_cache_ttl_seconds=30,
            **settings,
        ),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=Telemetry(f"ingestion-{name}"),
        connectors=Connectors(http_transport=httpx.MockTransport(IgRestStub())),
        sleep=timer.sleep,
    )
    return app, store


def bar(opened_at: datetime) -> BarClosed:
    price = market_price(opened_at)
    return BarClosed(
        symbol="EURUSD",
        timeframe=Timeframe.M1,
        opened_at=opened_at,
        closed_at=opened_at + MINUTE,
        open=price,
        high=price,
        low=price,
        close=price,
        volume=1.0,
        source="ig",
    )


async def test_polled_bars_and_quotes_are_cached_in_redis_and_a_restart_resumes_from_there(
    tmp_path: Path, bus: InMemoryBus, clock: FakeClock, redis_url: str, inspector: RedisCache
) -> None:
    # Arrange: the first app's store holds history up to 10:00
    bars = Recorder()
    await bus.subscribe(Subscription("test.bars", [Binding("market.bar.#")], bars))
    timer = ManualTimer(clock)
    options = {"redis_url": redis_url, "cache_prefix": inspector.prefix}
    first, first_store = await polling_app(tmp_path, "first", bus, clock, timer, **options)
    async with first_store.transaction() as unit:
        await unit.ohlcv.upsert_many([bar(TEN - MINUTE)])

    # Act: the first app polls the 10:00 bar, caches a quote, and stops
    await first.start()
    await timer.wake_at(TEN + MINUTE)
    await eventually(lambda: len(bars.messages) == 1)
    quote = TickReceived(symbol="EURUSD", quoted_at=TEN + MINUTE, bid=1.1, ask=1.1002, source="ig")
    await first.create_pipeline().publish_tick(quote)
    first_metrics = first.metrics
    await first.stop()
    await first_store.close()

    # Assert: latest bar and quote in Redis, each with its TTL
    cached = await inspector.latest_bar("EURUSD", Timeframe.M1)
    assert cached is not None
    assert cached.opened_at == TEN
    bar_ttl = await inspector.ttl_seconds("bar:latest:1m:EURUSD")
    assert bar_ttl is not None
    assert 3500 < bar_ttl <= 3600
    cached_quote = await inspector.get_json(quote_key("EURUSD"))
    assert cached_quote is not None
    assert cached_quote["bid"] == pytest.approx(1.1)
    quote_ttl = await inspector.ttl_seconds(quote_key("EURUSD"))
    assert quote_ttl is not None
    assert 0 < quote_ttl <= 30
    assert first_metrics.cache_misses._value.get() == 1  # nothing cached before the first poll
    assert first_metrics.cache_hit_ratio._value.get() == 0.0
    assert first.cache is None  # the app closed the Redis client it opened

    # Act: a second app with an empty store resumes after the cached bar
    second, second_store = await polling_app(tmp_path, "second", bus, clock, timer, **options)
    await second.start()
    await timer.wake_at(TEN + 2 * MINUTE)
    await eventually(lambda: len(bars.messages) == 2)
    await second.stop()
    await second_store.close()

    # Assert: only the 10:01 bar, not a lookback's worth; the read was a hit
    published = [message.opened_at for message in bars.messages if isinstance(message, BarClosed)]
    assert published == [TEN, TEN + MINUTE]
    assert second.metrics.cache_hits._value.get() == 1
    assert second.metrics.cache_hit_ratio._value.get() == 1.0
    assert (await inspector.latest_bar("EURUSD", Timeframe.M1)).opened_at == TEN + MINUTE  # type: ignore[union-attr]
