"""Yahoo through yfinance as it really behaves: its exceptions, its range limits, its bar times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from yfinance.exceptions import (
    YFDataException,
    YFPricesMissingError,
    YFRateLimitError,
    YFTzMissingError,
)

from tai_bus.memory import InMemoryBus
from tai_core.clock import FakeClock
from tai_events.market import Timeframe
from tai_ingestion.calendar import EquityCalendar, ForexCalendar
from tai_ingestion.errors import (
    RateLimitedError,
    SourceError,
    SourceUnavailableError,
    UnsupportedRequestError,
)
from tai_ingestion.failover import AllSourcesFailedError, FailoverSource
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.sources.yahoo import YFinanceSource
from tai_ingestion.validation import Validator
from tests.unit.ingestion.conftest import Recorder

NOW = datetime(2024, 6, 20, 12, 0, tzinfo=UTC)
NEW_YORK = "America/New_York"
LONDON = "Europe/London"
Call = tuple[str, datetime, datetime, str]


def frame(index: list[str], zone: str, closes: list[float], volume: float = 100.0) -> pd.DataFrame:
    """Return a history frame as yfinance gives it: OHLCV indexed by open time in ``zone``."""
    return pd.DataFrame(
        {
            "Open": closes,
            "High": [close + 0.5 for close in closes],
            "Low": [close - 0.5 for close in closes],
            "Close": closes,
            "Volume": [volume] * len(closes),
        },
        index=pd.DatetimeIndex([pd.Timestamp(stamp, tz=zone) for stamp in index]),
    )


def no_splits(_ticker: str) -> pd.Series:
    return pd.Series(dtype=float)


def source(
    answer: Callable[[str, datetime, datetime, str], pd.DataFrame],
    calls: list[Call] | None = None,
    *,
    splits: Callable[[str], pd.Series] = no_splits,
    now: datetime = NOW,
) -> YFinanceSource:
    def history(ticker: str, start: datetime, end: datetime, interval: str) -> pd.DataFrame:
        if calls is not None:
            calls.append((ticker, start, end, interval))
        return answer(ticker, start, end, interval)

    return YFinanceSource(
        InstrumentMap.with_overrides(), FakeClock(now), history=history, splits=splits
    )


def raising(error: Exception) -> Callable[[str, datetime, datetime, str], pd.DataFrame]:
    def history(*_: object) -> pd.DataFrame:
        raise error

    return history


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (YFRateLimitError(), RateLimitedError),
        (YFTzMissingError("EURUSD=X"), SourceUnavailableError),
        (YFDataException("*** YAHOO! FINANCE IS CURRENTLY DOWN! ***"), SourceUnavailableError),
        (
            YFPricesMissingError(
                "EURUSD=X",
                "(1m 2024-01-01 -> 2024-01-05)",
                yahoo_reason="1m data not available for startTime=1704067200 and "
                "endTime=1704412800. The requested range must be within the last 30 days.",
            ),
            UnsupportedRequestError,
        ),
    ],
    ids=["429", "no timezone", "yahoo down", "range past the limit"],
)
async def test_each_yfinance_exception_becomes_a_source_error(
    error: Exception, expected: type[SourceError]
) -> None:
    # Arrange
    yahoo = source(raising(error))
    # Act / Assert
    with pytest.raises(expected):
        await yahoo.fetch_history("EURUSD", Timeframe.H1, NOW - timedelta(days=1), NOW)


async def test_prices_missing_without_a_reason_is_an_empty_span() -> None:
    # Arrange: yfinance raises this for a span Yahoo has no bars in (a weekend)
    yahoo = source(raising(YFPricesMissingError("EURUSD=X", "(1h 2024-06-15 -> 2024-06-16)")))
    # Act
    rows = await yahoo.poll_recent("EURUSD", Timeframe.H1, NOW - timedelta(hours=2), NOW)
    # Assert
    assert rows == []


async def test_failover_reaches_sources_exhausted_when_yahoo_raises_its_own_exception(
    bus: InMemoryBus, metrics: IngestionMetrics, alerts_seen: Recorder
) -> None:
    # Arrange
    failover = FailoverSource(
        [source(raising(YFRateLimitError()))],
        validator=Validator(calendar=ForexCalendar()),
        bus=bus,
        clock=FakeClock(NOW),
        metrics=metrics,
    )
    # Act
    with pytest.raises(AllSourcesFailedError):
        await failover.fetch_history("EURUSD", Timeframe.H1, NOW - timedelta(days=1), NOW)
    await bus.drain()
    # Assert
    assert [alert.code for alert in alerts_seen.messages] == ["sources_exhausted"]  # type: ignore[attr-defined]


async def test_one_minute_bars_are_asked_seven_days_at_a_time_within_the_last_thirty() -> None:
    # Arrange
    calls: list[Call] = []
    yahoo = source(lambda *_: pd.DataFrame(), calls)
    # Act
    await yahoo.fetch_history("EURUSD", Timeframe.M1, NOW - timedelta(days=40), NOW)
    # Assert
    assert all(end - start <= timedelta(days=7) for _, start, end, _ in calls)
    assert calls[0][1] >= NOW - timedelta(days=30)
    assert calls[-1][2] == NOW
    assert [interval for *_, interval in calls] == ["1m"] * len(calls)
    assert all(calls[i][2] == calls[i + 1][1] for i in range(len(calls) - 1))


async def test_span_older_than_yahoo_serves_is_refused_without_asking() -> None:
    # Arrange
    calls: list[Call] = []
    yahoo = source(lambda *_: pd.DataFrame(), calls)
    end = NOW - timedelta(days=800)
    # Act / Assert
    with pytest.raises(UnsupportedRequestError, match="730 days"):
        await yahoo.fetch_history("EURUSD", Timeframe.H1, end - timedelta(days=5), end)
    assert calls == []


async def test_fx_daily_bars_at_london_midnight_are_labelled_by_their_date() -> None:
    # Arrange: Yahoo's FX days start at London midnight, 23:00 UTC in summer
    daily = frame(["2024-06-17", "2024-06-18", "2024-06-19"], LONDON, [1.07, 1.071, 1.072])
    yahoo = source(lambda *_: daily)
    # Act
    rows = await yahoo.fetch_history(
        "EURUSD", Timeframe.D1, datetime(2024, 6, 17, tzinfo=UTC), datetime(2024, 6, 20, tzinfo=UTC)
    )
    result = Validator(calendar=ForexCalendar()).validate(
        rows, symbol="EURUSD", timeframe=Timeframe.D1, source="yfinance"
    )
    # Assert
    assert [row.timestamp for row in rows] == [
        datetime(2024, 6, day, tzinfo=UTC) for day in (17, 18, 19)
    ]
    assert result.report.flagged_by_rule() == {}
    assert len(result.bars) == 3


async def test_equity_hourly_bars_are_built_on_the_utc_hour_from_fifteen_minute_bars() -> None:
    # Arrange: AAPL's session opens 09:30 New York (13:30 UTC in June)
    calls: list[Call] = []
    quarters = ["09:30", "09:45", "10:00", "10:15", "10:30", "10:45"]
    fifteen = frame(
        [f"2024-06-19 {time}" for time in quarters], NEW_YORK, [200.0, 201, 202, 203, 204, 205]
    )
    yahoo = source(lambda *_: fifteen, calls)
    start = datetime(2024, 6, 19, 13, tzinfo=UTC)
    # Act
    rows = await yahoo.fetch_history("AAPL", Timeframe.H1, start, start + timedelta(hours=2))
    result = Validator(calendar=EquityCalendar(NEW_YORK)).validate(
        rows, symbol="AAPL", timeframe=Timeframe.H1, source="yfinance"
    )
    # Assert
    assert {interval for *_, interval in calls} == {"15m"}
    assert [(row.timestamp, row.open, row.close, row.volume) for row in rows] == [
        (start, 200.0, 201.0, 200.0),
        (start + timedelta(hours=1), 202.0, 205.0, 400.0),
    ]
    assert rows[1].high == 205.5
    assert rows[1].low == 201.5
    assert result.report.flagged_by_rule() == {}


async def test_equity_prices_are_restored_to_as_traded_across_a_later_split() -> None:
    # Arrange: Yahoo divides the prices before a 4:1 split by 4 (and multiplies the volume)
    daily = frame(["2024-06-17", "2024-06-18", "2024-06-19"], NEW_YORK, [50.0, 51.0, 204.0], 400.0)

    def splits(_ticker: str) -> pd.Series:
        return pd.Series([4.0], index=pd.DatetimeIndex([pd.Timestamp("2024-06-19", tz=NEW_YORK)]))

    yahoo = source(lambda *_: daily, splits=splits)
    # Act
    rows = await yahoo.fetch_history(
        "AAPL", Timeframe.D1, datetime(2024, 6, 17, tzinfo=UTC), datetime(2024, 6, 20, tzinfo=UTC)
    )
    # Assert
    assert [(row.close, row.volume) for row in rows] == [
        (200.0, 100.0),
        (204.0, 100.0),
        (204.0, 400.0),
    ]
