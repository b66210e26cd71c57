"""Failover end to end: the primary fails mid-stream, the secondary continues, no bar lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest

from tai_bus.memory import InMemoryBus
from tai_core.clock import FakeClock
from tai_events.alerts import AlertRaised, Severity
from tai_events.base import Message
from tai_events.market import BarClosed, Timeframe
from tai_ingestion.backfill import Backfiller
from tai_ingestion.calendar import ForexCalendar
from tai_ingestion.errors import SourceUnavailableError, UnsupportedRequestError
from tai_ingestion.failover import AllSourcesFailedError, FailoverSource
from tai_ingestion.instruments import (
    CONVENTION,
    Instrument,
    PriceAdjustment,
    PriceBasis,
    TradingHours,
)
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.models import RawBar
from tai_ingestion.pipeline import BarPipeline, BarPoller
from tai_ingestion.validation import Validator
from tai_store import Store
from tai_store.cache import InProcessCache

HOUR = timedelta(hours=1)
MONDAY = datetime(2024, 1, 8, 0, 0, tzinfo=UTC)  # the conftest clock's start


class Recorder(Protocol):
    """What the conftest's bus recorders expose."""

    messages: list[Message]


def price(at: datetime) -> float:
    return float(1.1 + (at - MONDAY) / HOUR / 10_000)


class ScriptedSource:
    """A source over a synthetic market that can be told to fail or to serve garbage."""

    def __init__(self, name: str, basis: PriceBasis = CONVENTION) -> None:
        self.name = name
        self.basis = basis
        self.failing = False
        self.garbage = False
        self.unsupported = False
        self.calls = 0

    def price_basis(self, instrument: Instrument) -> PriceBasis:
        return self.basis

    def _rows(self, start: datetime, end: datetime) -> list[RawBar]:
        rows: list[RawBar] = []
        moment = start
        while moment < end:
            close = price(moment)
            rows.append(RawBar(len(rows), moment, close, close + 0.001, close - 0.001, close, 5.0))
            moment += HOUR
        if self.garbage:
            rows = [RawBar(r.row, r.timestamp, "x", None, "y", -1, 0) for r in rows]
        return rows

    async def fetch_history(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> list[RawBar]:
        self.calls += 1
        if self.failing:
            raise SourceUnavailableError(self.name, "HTTP 503")
        if self.unsupported:
            raise UnsupportedRequestError(self.name, "premium endpoint")
        return self._rows(start, end)

    async def poll_recent(
        self, symbol: str, timeframe: Timeframe, since: datetime, now: datetime
    ) -> list[RawBar]:
        self.calls += 1
        if self.failing:
            raise SourceUnavailableError(self.name, "HTTP 503")
        return self._rows(since, now - (now - since) % HOUR)


def failover(
    sources: list[ScriptedSource], bus: InMemoryBus, clock: FakeClock, metrics: IngestionMetrics
) -> FailoverSource:
    return FailoverSource(
        sources,
        validator=Validator(calendar=ForexCalendar(), metrics=metrics),
        bus=bus,
        clock=clock,
        metrics=metrics,
        cooldown=timedelta(minutes=30),
    )


async def test_primary_failing_mid_stream_hands_over_without_loss_or_duplicates(
    store: Store,
    bus: InMemoryBus,
    clock: FakeClock,
    metrics: IngestionMetrics,
    bars_seen: Recorder,
    alerts_seen: Recorder,
) -> None:
    primary, secondary = ScriptedSource("ig"), ScriptedSource("yfinance")
    cache = InProcessCache(clock)
    pipeline = BarPipeline(store=store, bus=bus, cache=cache, metrics=metrics)
    poller = BarPoller(
        failover([primary, secondary], bus, clock, metrics),
        pipeline,
        symbol="EURUSD",
        timeframe=Timeframe.H1,
        clock=clock,
        lookback_bars=3,
    )
    clock.set(MONDAY + 3 * HOUR)
    for step in range(8):
        if step == 3:
            primary.failing = True
        await poller.on_timer()
        clock.advance(HOUR)
    await bus.drain()

    bars = [message for message in bars_seen.messages if isinstance(message, BarClosed)]
    opens = [bar.opened_at for bar in bars]
    assert opens == [MONDAY + index * HOUR for index in range(10)]
    assert {bar.source for bar in bars[:5]} == {"ig"}
    assert {bar.source for bar in bars[5:]} == {"yfinance"}
    assert [bar.close for bar in bars] == pytest.approx([price(at) for at in opens])
    alerts = [message for message in alerts_seen.messages if isinstance(message, AlertRaised)]
    # The primary is tried again after each cool-down (30 min < one poll), and fails each time.
    assert [(alert.code, alert.severity, alert.details["to_source"]) for alert in alerts] == [
        ("source_failover", Severity.WARNING, "yfinance")
    ] * 5
    assert (
        metrics.failovers.labels(
            from_source="ig", to_source="yfinance", reason="unavailable"
        )._value.get()
        == 5
    )
    assert (
        metrics.bars_ingested.labels(
            symbol="EURUSD", timeframe="1h", source="yfinance"
        )._value.get()
        == 5
    )
    async with store.transaction() as unit:
        assert len(await unit.ohlcv.range("EURUSD", Timeframe.H1)) == 10
    assert (await cache.latest_bar("EURUSD", Timeframe.H1)).opened_at == MONDAY + 9 * HOUR  # type: ignore[union-attr]


async def test_invalid_data_fails_over_and_exhaustion_raises_a_critical_alert(
    bus: InMemoryBus, clock: FakeClock, metrics: IngestionMetrics, alerts_seen: Recorder
) -> None:
    primary, secondary = ScriptedSource("alpha_vantage"), ScriptedSource("yfinance")
    primary.garbage = True
    sources = failover([primary, secondary], bus, clock, metrics)
    result = await sources.fetch_history("EURUSD", Timeframe.H1, MONDAY, MONDAY + 4 * HOUR)
    assert result.source == "yfinance"
    assert len(result.bars) == 4
    secondary.failing = True
    clock.advance(timedelta(hours=1))
    with pytest.raises(AllSourcesFailedError):
        await sources.fetch_history("EURUSD", Timeframe.H1, MONDAY, MONDAY + 4 * HOUR)
    await bus.drain()
    codes = [message.code for message in alerts_seen.messages if isinstance(message, AlertRaised)]
    assert codes == ["source_failover", "source_failover", "sources_exhausted"]
    assert (
        metrics.rows_rejected.labels(rule="schema")._value.get() == 8
    )  # both tries of the primary


async def test_backfill_fetches_only_ranges_not_yet_stored(
    store: Store, bus: InMemoryBus, clock: FakeClock, metrics: IngestionMetrics
) -> None:
    source = ScriptedSource("yfinance")
    backfiller = Backfiller(failover([source], bus, clock, metrics), store, ForexCalendar())
    friday = MONDAY + timedelta(days=4)
    first = await backfiller.run("EURUSD", Timeframe.H1, friday + 20 * HOUR, friday + 3 * 24 * HOUR)
    assert first.bars_stored == 2 + 2  # Friday 20-22 and Sunday 22-24: the weekend is closed
    assert first.spans_fetched == 2
    calls = source.calls
    again = await backfiller.run("EURUSD", Timeframe.H1, friday + 20 * HOUR, friday + 3 * 24 * HOUR)
    assert (again.spans_fetched, again.bars_already_stored, source.calls) == (0, 4, calls)


@pytest.mark.parametrize(
    "basis",
    [
        PriceBasis(PriceAdjustment.SPLIT_AND_DIVIDEND_ADJUSTED, TradingHours.REGULAR),
        PriceBasis(PriceAdjustment.AS_TRADED, TradingHours.EXTENDED),
    ],
    ids=["adjusted", "extended hours"],
)
async def test_series_never_takes_bars_of_another_price_basis(
    basis: PriceBasis, bus: InMemoryBus, clock: FakeClock, metrics: IngestionMetrics
) -> None:
    # Arrange: the primary would answer, but its bars mean something else
    primary, secondary = ScriptedSource("alpha_vantage", basis), ScriptedSource("yfinance")
    sources = failover([primary, secondary], bus, clock, metrics)
    # Act
    result = await sources.fetch_history("AAPL", Timeframe.H1, MONDAY, MONDAY + 4 * HOUR)
    secondary.failing = True
    clock.advance(timedelta(hours=1))
    with pytest.raises(AllSourcesFailedError):
        await sources.fetch_history("AAPL", Timeframe.H1, MONDAY, MONDAY + 4 * HOUR)
    # Assert: the primary was never asked, not even with the secondary down
    assert result.source == "yfinance"
    assert primary.calls == 0


async def test_request_a_source_cannot_serve_does_not_rest_it(
    bus: InMemoryBus, clock: FakeClock, metrics: IngestionMetrics
) -> None:
    # Arrange
    primary, secondary = ScriptedSource("alpha_vantage"), ScriptedSource("yfinance")
    primary.unsupported = True
    sources = failover([primary, secondary], bus, clock, metrics)
    first = await sources.fetch_history("EURUSD", Timeframe.H1, MONDAY, MONDAY + 4 * HOUR)
    primary.unsupported = False
    # Act: the next request, at once (inside the 30-minute cool-down)
    second = await sources.fetch_history("EURUSD", Timeframe.H1, MONDAY, MONDAY + 4 * HOUR)
    # Assert
    assert (first.source, second.source) == ("yfinance", "alpha_vantage")
