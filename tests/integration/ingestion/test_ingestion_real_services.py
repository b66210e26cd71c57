"""The same sources, unchanged, against the real services (opt in: network and credentials).

Run with ``INGESTION_REAL_SOURCES=1`` (docs/runbook.md, "First run against the real
services"); Alpha Vantage also needs ``ALPHAVANTAGE_API_KEY`` and IG needs
``INGESTION_IG_API_KEY``, ``INGESTION_IG_IDENTIFIER`` and ``INGESTION_IG_PASSWORD`` (a demo
account by default). Each test is skipped when what it needs is missing. Set ``REDIS_URL=``
(empty) unless the IG allowances should be counted in the local Redis.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tai_bus.memory import InMemoryBus
from tai_core.clock import SystemClock
from tai_core.settings import load_settings
from tai_events.market import Timeframe
from tai_ingestion.calendar import EquityCalendar, ForexCalendar
from tai_ingestion.config import IngestionSettings, SourceName
from tai_ingestion.factory import Sources, build_sources
from tai_ingestion.failover import FailoverSource
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.sources.ig import IgSource
from tai_ingestion.validation import Validator
from tai_telemetry.metrics import Telemetry

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("INGESTION_REAL_SOURCES") != "1",
        reason="talks to the real services: set INGESTION_REAL_SOURCES=1",
    ),
]

NEEDS = {
    SourceName.YFINANCE: (),
    SourceName.ALPHA_VANTAGE: ("ALPHAVANTAGE_API_KEY",),
    SourceName.IG: ("INGESTION_IG_API_KEY", "INGESTION_IG_IDENTIFIER", "INGESTION_IG_PASSWORD"),
}


def settings_for(source: SourceName, **overrides: object) -> IngestionSettings:
    missing = [name for name in NEEDS[source] if not os.environ.get(name)]
    if missing:
        pytest.skip(f"{source.value} needs {', '.join(missing)}")
    return load_settings(IngestionSettings, sources=[source], **overrides)


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    async with InMemoryBus("ingestion-real") as memory_bus:
        yield memory_bus


async def sources_for(settings: IngestionSettings) -> tuple[Sources, IngestionMetrics]:
    metrics = IngestionMetrics.create(Telemetry("ingestion-real").registry)
    sources = build_sources(settings, InstrumentMap.with_overrides(), SystemClock(), metrics)
    return sources, metrics


# What each source serves a free or demo account: Alpha Vantage's FX intraday is a premium
# endpoint, so it is asked for days.
SERIES = {
    SourceName.YFINANCE: [Timeframe.H1, Timeframe.D1],
    SourceName.ALPHA_VANTAGE: [Timeframe.D1],
    SourceName.IG: [Timeframe.H1],
}
CASES = [(source, timeframe) for source, timeframes in SERIES.items() for timeframe in timeframes]


@pytest.mark.parametrize(
    ("source", "timeframe"), CASES, ids=[f"{s.value}-{t.value}" for s, t in CASES]
)
async def test_real_source_serves_eurusd_on_the_conventions_grid(
    source: SourceName, timeframe: Timeframe, bus: InMemoryBus
) -> None:
    # Arrange
    settings = settings_for(source)
    sources, metrics = await sources_for(settings)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    span = timedelta(days=7) if timeframe is Timeframe.H1 else timedelta(days=30)

    # Act
    async with sources:
        failover = FailoverSource(
            sources.polling,
            validator=Validator(calendar=ForexCalendar(), metrics=metrics),
            bus=bus,
            clock=SystemClock(),
            metrics=metrics,
        )
        result = await failover.fetch_history("EURUSD", timeframe, end - span, end)

    # Assert: bars on the UTC grid (hours on the hour, days at 00:00 UTC), none rejected
    assert result.source == source.value
    assert len(result.bars) > (24 if timeframe is Timeframe.H1 else 15)
    assert result.report.rejected == 0
    assert "misaligned" not in result.report.flagged_by_rule()


async def test_real_yahoo_equity_hours_are_on_the_utc_hour_and_regular_session(
    bus: InMemoryBus,
) -> None:
    # Arrange
    settings = settings_for(SourceName.YFINANCE)
    sources, metrics = await sources_for(settings)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    # Act
    async with sources:
        failover = FailoverSource(
            sources.polling,
            validator=Validator(calendar=EquityCalendar(), metrics=metrics),
            bus=bus,
            clock=SystemClock(),
            metrics=metrics,
        )
        result = await failover.fetch_history("AAPL", Timeframe.H1, end - timedelta(days=10), end)

    # Assert
    assert result.bars
    assert "misaligned" not in result.report.flagged_by_rule()
    assert all(bar.opened_at.minute == 0 for bar in result.bars)
    assert all(EquityCalendar().bar_expected(bar.opened_at, Timeframe.H1) for bar in result.bars)


async def test_real_ig_reads_the_keys_allowances_and_the_weekly_price_allowance() -> None:
    # Arrange
    settings = settings_for(SourceName.IG)
    sources, _ = await sources_for(settings)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    # Act
    async with sources:
        [ig] = sources.polling
        assert isinstance(ig, IgSource)
        await ig.fetch_history("EURUSD", Timeframe.H1, end - timedelta(hours=3), end)

    # Assert
    assert ig.historical_allowance is not None
    assert ig.historical_allowance.total > 0


async def test_real_ig_stream_delivers_a_quote() -> None:
    # Arrange
    if not ForexCalendar().is_open(datetime.now(UTC)):
        pytest.skip("the FX market is closed")
    settings = settings_for(SourceName.IG, stream_enabled=True)
    sources, _ = await sources_for(settings)
    assert sources.open_stream is not None
    stream = sources.open_stream()

    # Act
    async with sources:
        try:
            tick = await asyncio.wait_for(anext(aiter(stream.ticks(["EURUSD"]))), 60)
        finally:
            await stream.close()

    # Assert
    assert tick.symbol == "EURUSD"
    assert tick.ask >= tick.bid > 0
