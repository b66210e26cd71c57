"""The app live, end to end on the in-memory bus: IG ticks in, bars out; failover to polling."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tai_bus.api import Binding, Subscription
from tai_bus.memory import InMemoryBus
from tai_core.clock import FakeClock
from tai_events.alerts import AlertRaised, Severity
from tai_events.market import BarClosed, TickReceived, Timeframe
from tai_ingestion.app import IngestionApp, create_app
from tai_ingestion.config import IngestionSettings, SourceName
from tai_ingestion.factory import Connectors
from tai_ingestion.pipeline import quote_key
from tai_store import Store
from tai_store.cache import InProcessCache
from tai_telemetry.metrics import Telemetry
from tests.unit.ingestion.conftest import Recorder
from tests.unit.ingestion.live_fakes import (
    FakeStreamConnector,
    IgRestStub,
    ManualTimer,
    eventually,
    market_price,
)

MINUTE = timedelta(minutes=1)
TEN = datetime(2024, 1, 8, 10, 0, tzinfo=UTC)  # a Monday: the FX market is open
SATURDAY = datetime(2024, 1, 13, 10, 0, tzinfo=UTC)


def live_settings(**overrides: Any) -> IngestionSettings:
    values: dict[str, Any] = {
        "symbol": "EURUSD",
        "timeframe": Timeframe.M1,
        "timeframes": [Timeframe.M5],
        "sources": [SourceName.IG],
        "ig_api_key": "key",
        "ig_identifier": "user",
        "ig_password": "secret",
        "stream_enabled": True,
        "stream_retry_seconds": 90,
        "stream_idle_timeout_seconds": 600,
        "http_backoff_seconds": 0,
        "redis_url": "",
    }
    return IngestionSettings(**(values | overrides))


def stored_bar(opened_at: datetime, timeframe: Timeframe) -> BarClosed:
    price = market_price(opened_at)
    return BarClosed(
        symbol="EURUSD",
        timeframe=timeframe,
        opened_at=opened_at,
        closed_at=opened_at + timeframe.duration,
        open=price,
        high=price,
        low=price,
        close=price,
        volume=1.0,
        source="ig",
    )


@pytest.fixture
async def bus(clock: FakeClock) -> AsyncIterator[InMemoryBus]:
    # Delivering in the background (not on drain()): the app publishes from its own tasks.
    async with InMemoryBus("ingestion", clock=clock) as memory_bus:
        yield memory_bus


@dataclass
class Live:
    """The app under test and the fakes around it."""

    app: IngestionApp
    timer: ManualTimer
    stub: IgRestStub
    connector: FakeStreamConnector
    cache: InProcessCache
    ticks: Recorder

    async def tick(self, at: datetime, bid: float) -> None:
        """Move time to ``at`` (firing due timers), push a tick and wait until it is published."""
        published = len(self.ticks.messages)
        self.timer.advance_to(at)
        self.connector.push(at, bid)
        await eventually(lambda: len(self.ticks.messages) == published + 1)


@pytest.fixture
async def live(
    store: Store, bus: InMemoryBus, clock: FakeClock, telemetry: Telemetry
) -> AsyncIterator[Live]:
    ticks = Recorder()
    await bus.subscribe(Subscription("test.ticks", [Binding("market.tick.#")], ticks))
    timer = ManualTimer(clock)
    stub, connector = IgRestStub(), FakeStreamConnector()
    cache = InProcessCache(clock)
    app = create_app(
        live_settings(),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
        cache=cache,
        connectors=Connectors(http_transport=httpx.MockTransport(stub), stream_connector=connector),
        sleep=timer.sleep,
    )
    yield Live(app, timer, stub, connector, cache, ticks)
    await app.stop()


def count_is(expected: int, measure: Callable[[], int]) -> Callable[[], bool]:
    return lambda: measure() == expected


def bars_of(recorder: Recorder, timeframe: Timeframe) -> list[tuple[datetime, str]]:
    return [
        (message.opened_at, message.source)
        for message in recorder.messages
        if isinstance(message, BarClosed) and message.timeframe is timeframe
    ]


@pytest.mark.parametrize(
    "rest_down_at_reconnect", [False, True], ids=["rest_in_time", "rest_down_at_10_04"]
)
async def test_stream_failing_mid_bar_hands_over_to_polling_and_back_without_loss_or_duplicates(
    live: Live,
    store: Store,
    clock: FakeClock,
    bus: InMemoryBus,
    bars_seen: Recorder,
    alerts_seen: Recorder,
    rest_down_at_reconnect: bool,
) -> None:
    # Arrange: history up to 10:00 is stored; the stream starts at 10:00 sharp
    async with store.transaction() as unit:
        await unit.ohlcv.upsert_many(
            [stored_bar(TEN - MINUTE, Timeframe.M1), stored_bar(TEN - 5 * MINUTE, Timeframe.M5)]
        )
    clock.set(TEN)
    await live.app.start()
    await eventually(lambda: len(live.connector.connections) == 1)

    # Act: two minutes streamed; the server cuts the stream at 10:02:30, mid-bar
    for seconds, bid in [(10, 1.1000), (40, 1.1004), (65, 1.1010), (110, 1.1002), (130, 1.1006)]:
        await live.tick(TEN + timedelta(seconds=seconds), bid)
    live.timer.advance_to(TEN + timedelta(seconds=150))
    live.connector.fail("server error (41): session closed")
    await eventually(lambda: len(alerts_seen.messages) == 1)
    # ... the IG REST source covers the bar closes of 10:03 and 10:04 (or is down at 10:04,
    # and the 10:03 bar is fetched before the next streamed bar goes out) ...
    await live.timer.wake_at(TEN + 3 * MINUTE)
    await eventually(lambda: len(bars_of(bars_seen, Timeframe.M1)) == 3)
    live.stub.failing = rest_down_at_reconnect
    await live.timer.wake_at(TEN + 4 * MINUTE)
    # ... the stream is reconnected at 10:04 (after 90 s) and streams on
    await eventually(lambda: len(live.connector.connections) == 2)
    live.stub.failing = False
    for seconds, bid in [(245, 1.1003), (270, 1.1001), (302, 1.1008), (340, 1.1009), (361, 1.1)]:
        await live.tick(TEN + timedelta(seconds=seconds), bid)
    await bus.drain()

    # Assert: every minute once, from whichever source had it whole
    assert bars_of(bars_seen, Timeframe.M1) == [
        (TEN, "ig_stream"),
        (TEN + MINUTE, "ig_stream"),
        (TEN + 2 * MINUTE, "ig"),
        (TEN + 3 * MINUTE, "ig"),
        (TEN + 4 * MINUTE, "ig_stream"),
        (TEN + 5 * MINUTE, "ig_stream"),
    ]
    # The 10:00 five-minute bar was streamed only in part, so the source supplied it whole.
    assert bars_of(bars_seen, Timeframe.M5) == [(TEN, "ig")]
    first = next(m for m in bars_seen.messages if isinstance(m, BarClosed))
    assert (first.open, first.high, first.low, first.close) == pytest.approx(
        (1.1001, 1.1005, 1.1001, 1.1005)
    )
    alerts = [m for m in alerts_seen.messages if isinstance(m, AlertRaised)]
    assert [(alert.code, alert.severity) for alert in alerts] == [
        ("stream_failover", Severity.WARNING),
        *([("sources_exhausted", Severity.CRITICAL)] if rest_down_at_reconnect else []),
        ("stream_restored", Severity.INFO),
    ]
    assert alerts[0].details == {
        "from_source": "ig_stream",
        "to_source": "ig",
        "reason": "disconnected",
        "symbol": "EURUSD",
    }
    metrics = live.app.metrics
    assert (
        metrics.failovers.labels(
            from_source="ig_stream", to_source="ig", reason="disconnected"
        )._value.get()
        == 1
    )
    assert (
        metrics.bars_ingested.labels(symbol="EURUSD", timeframe="1m", source="ig")._value.get() == 2
    )
    assert live.stub.logins == 2  # the refused session's tokens were dropped, then a new login
    assert len(live.ticks.messages) == 10
    async with store.transaction() as unit:
        stored = await unit.ohlcv.range("EURUSD", Timeframe.M1)
    assert [bar.opened_at for bar in stored] == [TEN + n * MINUTE for n in range(-1, 6)]


async def test_streamed_quotes_are_published_and_cached_with_their_ttl(
    live: Live, clock: FakeClock
) -> None:
    # Arrange
    clock.set(TEN)
    await live.app.start()
    await eventually(lambda: len(live.connector.connections) == 1)

    # Act
    await live.tick(TEN + timedelta(seconds=5), 1.1000)

    # Assert
    tick = live.ticks.messages[0]
    assert isinstance(tick, TickReceived)
    assert (tick.bid, tick.ask) == pytest.approx((1.1, 1.1002))
    assert tick.source == "ig"
    cached = await live.cache.get_json(quote_key("EURUSD"))
    assert cached is not None
    assert cached["bid"] == pytest.approx(1.1)
    live.timer.advance_to(TEN + timedelta(seconds=5 + 61))  # quote TTL 60 s
    assert await live.cache.get_json(quote_key("EURUSD")) is None


@pytest.mark.parametrize(
    ("start", "fails_over"),
    [(TEN, True), (SATURDAY, False)],
    ids=["market_open", "weekend"],
)
async def test_silent_stream_fails_over_only_while_the_market_is_open(
    live: Live, clock: FakeClock, alerts_seen: Recorder, start: datetime, fails_over: bool
) -> None:
    # Arrange: idle timeout 600 s
    clock.set(start)
    await live.app.start()
    await eventually(lambda: len(live.connector.connections) == 1)

    # Act: eleven minutes without a tick, the timer firing at each bar close
    for minute in range(1, 12):
        await live.timer.wake_at(start + minute * MINUTE)

    # Assert
    failovers = live.app.metrics.failovers.labels(
        from_source="ig_stream", to_source="ig", reason="stalled"
    )._value.get()
    assert failovers == (1 if fails_over else 0)
    codes = [m.code for m in alerts_seen.messages if isinstance(m, AlertRaised)]
    assert codes == (["stream_failover"] if fails_over else [])


async def test_stream_that_never_connects_is_retried_with_growing_waits_while_polling(
    store: Store, bus: InMemoryBus, clock: FakeClock, telemetry: Telemetry, bars_seen: Recorder
) -> None:
    # Arrange: the stream's library refuses to connect; IG REST still answers
    class RefusingConnector(FakeStreamConnector):
        def connect(self, *args: Any, **kwargs: Any) -> FakeStreamConnector:
            self.connections.append({})
            raise ConnectionRefusedError("no route to the stream server")

    timer, connector = ManualTimer(clock), RefusingConnector()
    clock.set(TEN)
    app = create_app(
        live_settings(stream_retry_seconds=60, stream_max_retry_seconds=240, timeframes=[]),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
        connectors=Connectors(
            http_transport=httpx.MockTransport(IgRestStub()), stream_connector=connector
        ),
        sleep=timer.sleep,
    )
    await app.start()

    def failovers() -> int:
        return int(
            app.metrics.failovers.labels(
                from_source="ig_stream", to_source="ig", reason="disconnected"
            )._value.get()
        )

    def settled_until(moment: datetime) -> Callable[[], bool]:
        # Each failed attempt has been reported, and the polling waits for the next close.
        return lambda: (
            failovers() == len(connector.connections) >= 1 and moment in timer.deadlines()
        )

    # Act: run ten minutes, minute by minute
    attempts_at: list[int] = []
    for minute in range(1, 11):
        await eventually(settled_until(TEN + minute * MINUTE))
        attempts_at.append(len(connector.connections))
        timer.advance_to(TEN + minute * MINUTE)
        # The first poll publishes the 100 bars before 10:01, each later one a bar.
        await eventually(count_is(99 + minute, lambda: len(bars_seen.messages)))
    await app.stop()

    # Assert: attempts at 10:00, 10:01, 10:03, 10:07 (waits of 1, 2, 4 minutes), as seen
    # just before each minute from 10:01 to 10:10
    assert attempts_at == [1, 2, 2, 3, 3, 3, 3, 4, 4, 4]
    opens = [m.opened_at for m in bars_seen.messages if isinstance(m, BarClosed)]
    assert opens == sorted(set(opens))
    assert opens[-1] == TEN + 9 * MINUTE


async def test_stop_closes_every_http_client_and_disconnects_the_stream(
    live: Live, clock: FakeClock
) -> None:
    # Arrange
    clock.set(TEN)
    await live.app.start()
    await eventually(lambda: len(live.connector.connections) == 1)
    sources = live.app.sources
    assert sources is not None
    clients = list(sources.http_clients)

    # Act
    await live.app.stop()

    # Assert
    assert [client.source for client in clients] == ["ig"]
    assert all(client.is_closed for client in clients)
    assert live.connector.disconnects == 1
    assert live.app.sources is None


async def test_polling_app_closes_its_clients_on_stop(
    store: Store, bus: InMemoryBus, clock: FakeClock, telemetry: Telemetry
) -> None:
    # Arrange: IG and Alpha Vantage both configured, each with its own HTTP client
    settings = live_settings(
        stream_enabled=False,
        poll_enabled=True,
        sources=[SourceName.IG, SourceName.ALPHA_VANTAGE, SourceName.YFINANCE],
        alpha_vantage_api_key="demo",
    )
    timer = ManualTimer(clock)
    app = create_app(
        settings,
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
        connectors=Connectors(http_transport=httpx.MockTransport(IgRestStub())),
        sleep=timer.sleep,
    )
    await app.start()
    assert app.sources is not None
    clients = list(app.sources.http_clients)
    assert not any(client.is_closed for client in clients)

    # Act
    await app.stop()

    # Assert
    assert sorted(client.source for client in clients) == ["alpha_vantage", "ig"]
    assert all(client.is_closed for client in clients)


async def test_polling_app_publishes_each_timeframe_at_its_bar_close(
    store: Store,
    bus: InMemoryBus,
    clock: FakeClock,
    telemetry: Telemetry,
    bars_seen: Recorder,
) -> None:
    # Arrange: 1m and 5m bars polled from IG REST; history up to 10:00 stored
    async with store.transaction() as unit:
        await unit.ohlcv.upsert_many(
            [stored_bar(TEN - MINUTE, Timeframe.M1), stored_bar(TEN - 5 * MINUTE, Timeframe.M5)]
        )
    timer = ManualTimer(clock)
    clock.set(TEN)
    app = create_app(
        live_settings(stream_enabled=False, poll_enabled=True),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
        connectors=Connectors(http_transport=httpx.MockTransport(IgRestStub())),
        sleep=timer.sleep,
    )
    await app.start()

    # Act
    for minute in range(1, 6):
        await timer.wake_at(TEN + minute * MINUTE)
        await eventually(count_is(minute, lambda: len(bars_of(bars_seen, Timeframe.M1))))
    await eventually(lambda: len(bars_of(bars_seen, Timeframe.M5)) == 1)
    await app.stop()

    # Assert
    assert bars_of(bars_seen, Timeframe.M1) == [(TEN + n * MINUTE, "ig") for n in range(5)]
    assert bars_of(bars_seen, Timeframe.M5) == [(TEN, "ig")]


async def test_bars_still_go_out_when_redis_is_unreachable(
    store: Store,
    bus: InMemoryBus,
    clock: FakeClock,
    telemetry: Telemetry,
    bars_seen: Recorder,
) -> None:
    # Arrange: nothing listens on the configured Redis port
    async with store.transaction() as unit:
        await unit.ohlcv.upsert_many([stored_bar(TEN - MINUTE, Timeframe.M1)])
    timer = ManualTimer(clock)
    clock.set(TEN)
    app = create_app(
        live_settings(
            stream_enabled=False,
            poll_enabled=True,
            timeframes=[],
            redis_url="redis://127.0.0.1:1/0",
        ),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
        connectors=Connectors(http_transport=httpx.MockTransport(IgRestStub())),
        sleep=timer.sleep,
    )
    await app.start()

    # Act
    await timer.wake_at(TEN + MINUTE)
    await eventually(lambda: len(bars_seen.messages) == 1)
    await app.stop()

    # Assert: the high-water mark came from the store, the bar went out, both failures counted
    assert bars_of(bars_seen, Timeframe.M1) == [(TEN, "ig")]
    errors = app.metrics.cache_errors
    assert (
        errors.labels(operation="read")._value.get(),
        errors.labels(operation="write")._value.get(),
    ) == (1, 1)


async def test_protocol_refusal_alerts_once_polls_and_retries_seldom_without_new_logins(
    store: Store,
    bus: InMemoryBus,
    clock: FakeClock,
    telemetry: Telemetry,
    bars_seen: Recorder,
    alerts_seen: Recorder,
) -> None:
    # Arrange: IG's stream server answers a too-new client CONERR,65 on every connection
    class ProtocolRefusingConnector(FakeStreamConnector):
        def connect(self, *args: Any, **kwargs: Any) -> FakeStreamConnector:
            handle = super().connect(*args, **kwargs)
            kwargs["on_failure"]("server error (65): Unsupported protocol version: 2.5.0", 65)
            return handle

    timer, connector, stub = ManualTimer(clock), ProtocolRefusingConnector(), IgRestStub()
    clock.set(TEN)
    app = create_app(
        live_settings(stream_retry_seconds=5, stream_max_retry_seconds=300, timeframes=[]),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
        connectors=Connectors(http_transport=httpx.MockTransport(stub), stream_connector=connector),
        sleep=timer.sleep,
    )
    await app.start()

    def refusals() -> int:
        return int(
            app.metrics.failovers.labels(
                from_source="ig_stream", to_source="ig", reason="protocol_refused"
            )._value.get()
        )

    # Act: twelve minutes, minute by minute, each once the app has settled
    for minute in range(1, 13):
        moment = TEN + minute * MINUTE
        await eventually(
            lambda moment=moment: (
                refusals() == len(connector.connections)  # type: ignore[misc]
                and timer.deadlines() == [moment]
            )
        )
        timer.advance_to(moment)
        await eventually(count_is(99 + minute, lambda: len(bars_seen.messages)))
    await app.stop()

    # Assert: one critical alert naming the refusal; a retry every 5 minutes, not every few
    # seconds; one REST login in all; the polling published every minute meanwhile
    alerts = [m for m in alerts_seen.messages if isinstance(m, AlertRaised)]
    assert [(alert.code, alert.severity) for alert in alerts] == [
        ("stream_protocol_refused", Severity.CRITICAL)
    ]
    assert "Unsupported protocol version: 2.5.0" in alerts[0].message
    assert "lightstreamer-client-lib 1." in alerts[0].message
    assert alerts[0].details["reason"] == "protocol_refused"
    assert len(connector.connections) == 3  # 10:00, 10:05, 10:10
    assert stub.logins == 1
    opens = [m.opened_at for m in bars_seen.messages if isinstance(m, BarClosed)]
    assert opens[-1] == TEN + 11 * MINUTE
