"""Alpha Vantage as a free key really meets it: premium refusals, throttles, its defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tai_bus.memory import InMemoryBus
from tai_core.clock import FakeClock
from tai_events.market import Timeframe
from tai_ingestion.calendar import EquityCalendar
from tai_ingestion.errors import RateLimitedError, UnsupportedRequestError
from tai_ingestion.failover import AllSourcesFailedError, FailoverSource
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.sources.alphavantage import AlphaVantageSource
from tai_ingestion.sources.base import JsonHttpClient
from tai_ingestion.validation import Validator

NOW = datetime(2024, 6, 19, 18, 0, tzinfo=UTC)

# Alpha Vantage's answers (HTTP 200) to a key that may not, or may no longer, ask.
PREMIUM = {
    "Information": "Thank you for using Alpha Vantage! This is a premium endpoint. You may "
    "subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly "
    "unlock all premium endpoints"
}
DAILY_LIMIT = {
    "Information": "We have detected your API key as DEMOKEY and our standard API rate limit is "
    "25 requests per day. Please subscribe to any of the premium plans at "
    "https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."
}
PER_MINUTE_NOTE = {
    "Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per "
    "minute and 500 calls per day. Please visit https://www.alphavantage.co/premium/ if you "
    "would like to target a higher API call frequency."
}
FX_DAILY = {
    "Meta Data": {
        "1. Information": "Forex Daily Prices (open, high, low, close)",
        "2. From Symbol": "EUR",
        "3. To Symbol": "USD",
        "4. Output Size": "Full size",
        "5. Last Refreshed": "2024-06-19 16:00:00",
        "6. Time Zone": "UTC",
    },
    "Time Series FX (Daily)": {
        "2024-06-18": {
            "1. open": "1.0735",
            "2. high": "1.0750",
            "3. low": "1.0720",
            "4. close": "1.0740",
        },
    },
}
EQUITY_FIFTEEN = {
    "Meta Data": {
        "1. Information": "Intraday (15min) open, high, low, close prices and volume",
        "2. Symbol": "AAPL",
        "3. Last Refreshed": "2024-06-19 10:45:00",
        "4. Interval": "15min",
        "5. Output Size": "Full size",
        "6. Time Zone": "US/Eastern",
    },
    "Time Series (15min)": {
        f"2024-06-19 {time}:00": {
            "1. open": str(price),
            "2. high": str(price + 0.5),
            "3. low": str(price - 0.5),
            "4. close": str(price),
            "5. volume": "1000",
        }
        for time, price in (
            ("09:30", 200),
            ("09:45", 201),
            ("10:00", 202),
            ("10:15", 203),
            ("10:30", 204),
            ("10:45", 205),
        )
    },
}


class AlphaVantageStub:
    """Answers by function, records every request."""

    def __init__(self, answers: dict[str, dict[str, object]]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=self.answers[request.url.params["function"]])

    def functions(self) -> list[str]:
        return [request.url.params["function"] for request in self.requests]


def alpha_vantage(stub: AlphaVantageStub, clock: FakeClock) -> AlphaVantageSource:
    http = JsonHttpClient(
        "alpha_vantage",
        "https://www.alphavantage.co",
        backoff_seconds=0,
        transport=httpx.MockTransport(stub),
    )
    return AlphaVantageSource(
        http, "demo-key", InstrumentMap.with_overrides(), clock, requests_per_minute=None
    )


async def test_premium_refusal_is_unsupported_and_never_asked_again() -> None:
    # Arrange: FX intraday is a premium endpoint; FX daily is not
    stub = AlphaVantageStub({"FX_INTRADAY": PREMIUM, "FX_DAILY": FX_DAILY})
    source = alpha_vantage(stub, FakeClock(NOW))
    # Act
    with pytest.raises(UnsupportedRequestError, match="premium"):
        await source.fetch_history("EURUSD", Timeframe.H1, NOW - timedelta(hours=5), NOW)
    with pytest.raises(UnsupportedRequestError, match="premium"):
        await source.poll_recent("EURUSD", Timeframe.H1, NOW - timedelta(hours=2), NOW)
    daily = await source.fetch_history(
        "EURUSD", Timeframe.D1, datetime(2024, 6, 18, tzinfo=UTC), NOW
    )
    # Assert: one refused request, then none; the daily series still comes
    assert stub.functions() == ["FX_INTRADAY", "FX_DAILY"]
    assert [row.timestamp for row in daily] == [datetime(2024, 6, 18, tzinfo=UTC)]


async def test_failover_does_not_rest_alpha_vantage_for_a_premium_refusal(
    bus: InMemoryBus, metrics: IngestionMetrics
) -> None:
    # Arrange
    stub = AlphaVantageStub({"FX_INTRADAY": PREMIUM, "FX_DAILY": FX_DAILY})
    clock = FakeClock(NOW)
    failover = FailoverSource(
        [alpha_vantage(stub, clock)], validator=Validator(), bus=bus, clock=clock, metrics=metrics
    )
    # Act: the intraday request fails over; the daily one, right after, is still asked
    with pytest.raises(AllSourcesFailedError, match="premium"):
        await failover.fetch_history("EURUSD", Timeframe.H1, NOW - timedelta(hours=5), NOW)
    result = await failover.fetch_history(
        "EURUSD", Timeframe.D1, datetime(2024, 6, 18, tzinfo=UTC), datetime(2024, 6, 19, tzinfo=UTC)
    )
    # Assert
    assert result.source == "alpha_vantage"
    assert len(result.bars) == 1


@pytest.mark.parametrize(
    ("answer", "rest_seconds"),
    [
        (DAILY_LIMIT, 6 * 3600.0),  # until 00:00 UTC, when the day's 25 requests come back
        (PER_MINUTE_NOTE, 60.0),
    ],
    ids=["per day", "per minute"],
)
async def test_throttle_messages_rest_until_the_limit_lifts(
    answer: dict[str, object], rest_seconds: float
) -> None:
    # Arrange
    source = alpha_vantage(AlphaVantageStub({"FX_DAILY": answer}), FakeClock(NOW))
    # Act
    with pytest.raises(RateLimitedError) as raised:
        await source.fetch_history("EURUSD", Timeframe.D1, NOW - timedelta(days=3), NOW)
    # Assert
    assert raised.value.retry_after_seconds == rest_seconds


async def test_equity_hours_are_as_traded_regular_hours_on_the_utc_hour() -> None:
    # Arrange: TIME_SERIES_INTRADAY defaults to adjusted prices and 04:00-20:00
    stub = AlphaVantageStub({"TIME_SERIES_INTRADAY": EQUITY_FIFTEEN})
    source = alpha_vantage(stub, FakeClock(NOW))
    start = datetime(2024, 6, 19, 13, tzinfo=UTC)
    # Act
    rows = await source.fetch_history("AAPL", Timeframe.H1, start, start + timedelta(hours=2))
    result = Validator(calendar=EquityCalendar("America/New_York")).validate(
        rows, symbol="AAPL", timeframe=Timeframe.H1, source="alpha_vantage"
    )
    # Assert
    params = stub.requests[0].url.params
    assert (params["adjusted"], params["extended_hours"], params["interval"]) == (
        "false",
        "false",
        "15min",
    )
    assert [(row.timestamp, row.open, row.close, row.volume) for row in rows] == [
        (start, 200.0, 201.0, 2000.0),
        (start + timedelta(hours=1), 202.0, 205.0, 4000.0),
    ]
    assert result.report.flagged_by_rule() == {}
