"""Sources against recorded responses (httpx MockTransport / recorded frames), incl. failures."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest
from pydantic import SecretStr

from tai_core.clock import FakeClock
from tai_events.market import Timeframe
from tai_ingestion.bars import BarBuilder
from tai_ingestion.errors import (
    InvalidDataError,
    RateLimitedError,
    SourceTimeoutError,
    SourceUnavailableError,
    StreamDisconnectedError,
    StreamProtocolError,
)
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.sources.alphavantage import AlphaVantageSource
from tai_ingestion.sources.base import JsonHttpClient
from tai_ingestion.sources.ig import IgRestClient, IgSource
from tai_ingestion.sources.ig_stream import (
    FailureCallback,
    IgTickStream,
    UpdateCallback,
    parse_tick,
)
from tai_ingestion.sources.yahoo import YFinanceSource
from tai_store.ratelimit import InProcessRateLimiter
from tai_telemetry.metrics import Telemetry
from tests import ig_responses

T0 = datetime(2024, 1, 8, 10, 0, tzinfo=UTC)
YAHOO_CLOCK = FakeClock(T0 + timedelta(hours=2))
Handler = Callable[[httpx.Request], httpx.Response]

FX_INTRADAY = {
    "Meta Data": {
        "1. Information": "FX Intraday (60min) Time Series",
        "2. From Symbol": "EUR",
        "3. To Symbol": "USD",
        "4. Last Refreshed": "2024-01-08 12:00:00",
        "5. Interval": "60min",
        "6. Output Size": "Full size",
        "7. Time Zone": "UTC",
    },
    "Time Series FX (60min)": {
        "2024-01-08 12:00:00": {
            "1. open": "1.0960",
            "2. high": "1.0970",
            "3. low": "1.0955",
            "4. close": "1.0965",
        },
        "2024-01-08 11:00:00": {
            "1. open": "1.0950",
            "2. high": "1.0962",
            "3. low": "1.0948",
            "4. close": "1.0960",
        },
        "2024-01-08 10:00:00": {
            "1. open": "1.0940",
            "2. high": "1.0952",
            "3. low": "1.0938",
            "4. close": "1.0950",
        },
    },
}


def alpha_vantage(
    handler: Handler, clock: FakeClock, metrics: IngestionMetrics, **limits: int
) -> AlphaVantageSource:
    http = JsonHttpClient(
        "alpha_vantage",
        "https://www.alphavantage.co",
        retries=3,
        backoff_seconds=0,
        metrics=metrics,
        transport=httpx.MockTransport(handler),
    )
    return AlphaVantageSource(http, "demo-key", InstrumentMap.with_overrides(), clock, **limits)


async def test_alpha_vantage_fx_intraday_request_and_parsing(
    clock: FakeClock, metrics: IngestionMetrics
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=FX_INTRADAY)

    rows = await alpha_vantage(handler, clock, metrics).fetch_history(
        "EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=2)
    )
    params = seen[0].url.params
    assert (params["function"], params["from_symbol"], params["to_symbol"], params["interval"]) == (
        "FX_INTRADAY",
        "EUR",
        "USD",
        "60min",
    )
    assert [(row.timestamp, row.close) for row in rows] == [
        (T0, "1.0950"),
        (T0 + timedelta(hours=1), "1.0960"),
    ]


async def test_alpha_vantage_equity_daily_bars_are_labelled_by_their_date_at_midnight_utc(
    clock: FakeClock, metrics: IngestionMetrics
) -> None:
    payload = {
        "Meta Data": {"2. Symbol": "GOOG", "5. Time Zone": "US/Eastern"},
        "Time Series (Daily)": {
            "2024-01-08": {
                "1. open": "1",
                "2. high": "2",
                "3. low": "0.5",
                "4. close": "1.5",
                "5. volume": "100",
            }
        },
    }
    rows = await alpha_vantage(
        lambda _: httpx.Response(200, json=payload), clock, metrics
    ).fetch_history(
        "GOOG", Timeframe.D1, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    )
    assert rows[0].timestamp == datetime(2024, 1, 8, tzinfo=UTC)
    assert rows[0].volume == "100"


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(429, headers={"Retry-After": "30"}), RateLimitedError),
        (
            httpx.Response(
                200, json={"Note": "Thank you for using Alpha Vantage! 5 calls per minute"}
            ),
            RateLimitedError,
        ),
        (
            httpx.Response(200, json={"Information": "rate limit is 25 requests per day"}),
            RateLimitedError,
        ),
        (httpx.Response(200, json={"Error Message": "Invalid API call"}), InvalidDataError),
        (httpx.Response(200, content=b"<html>oops"), InvalidDataError),
        (httpx.Response(200, json={"Meta Data": {}}), InvalidDataError),
        (httpx.Response(500), SourceUnavailableError),
    ],
)
async def test_alpha_vantage_failures_map_to_source_errors(
    response: httpx.Response, error: type[Exception], clock: FakeClock, metrics: IngestionMetrics
) -> None:
    source = alpha_vantage(lambda _: response, clock, metrics)
    with pytest.raises(error):
        await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=3))


async def test_server_error_is_retried_then_succeeds(
    clock: FakeClock, metrics: IngestionMetrics
) -> None:
    answers = iter(
        [httpx.Response(503), httpx.Response(502), httpx.Response(200, json=FX_INTRADAY)]
    )
    rows = await alpha_vantage(lambda _: next(answers), clock, metrics).fetch_history(
        "EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=3)
    )
    assert len(rows) == 3
    assert (
        metrics.source_errors.labels(source="alpha_vantage", reason="unavailable")._value.get() == 2
    )


async def test_timeout_is_retried_and_reported(clock: FakeClock, metrics: IngestionMetrics) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(SourceTimeoutError):
        await alpha_vantage(handler, clock, metrics).fetch_history(
            "EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1)
        )
    assert metrics.source_errors.labels(source="alpha_vantage", reason="timeout")._value.get() == 3


async def test_own_request_budget_refuses_before_calling(
    clock: FakeClock, metrics: IngestionMetrics
) -> None:
    calls: list[int] = []

    def handler(_: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, json=FX_INTRADAY)

    source = alpha_vantage(handler, clock, metrics, requests_per_minute=2, requests_per_day=100)
    for _ in range(2):
        await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1))
    with pytest.raises(RateLimitedError):
        await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1))
    clock.advance(timedelta(minutes=1))
    await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1))
    assert len(calls) == 3


class IgStub:
    """Recorded IG behaviour: login, the key's allowances, paged prices, an expiring token."""

    def __init__(self) -> None:
        self.logins = 0
        self.expire_next = False
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/session"):
            self.logins += 1
            body = json.loads(request.content)
            assert request.headers["X-IG-API-KEY"] == "key"
            assert request.headers["Version"] == "2"
            assert body == {"identifier": "user", "password": "secret"}
            return httpx.Response(
                200,
                headers={"CST": f"cst{self.logins}", "X-SECURITY-TOKEN": f"xst{self.logins}"},
                json=ig_responses.session_body(),
            )
        if self.expire_next:
            self.expire_next = False
            return httpx.Response(401, json=ig_responses.error_body(ig_responses.TOKEN_INVALID[1]))
        assert request.headers["CST"] == f"cst{self.logins}"
        if request.url.path.endswith("/operations/application"):
            assert request.headers["Version"] == "1"
            return httpx.Response(200, json=ig_responses.applications_body("key"))
        assert request.headers["Version"] == "3"
        page = int(request.url.params["pageNumber"])
        at = T0 + timedelta(hours=page - 1)
        return httpx.Response(
            200,
            json=ig_responses.prices_body(
                [ig_responses.price_point(at, 1.09 + page / 1000)], page=page, total_pages=2
            ),
        )

    @property
    def price_requests(self) -> list[httpx.Request]:
        return [request for request in self.requests if "/prices/" in request.url.path]


def ig_source(stub: Handler) -> tuple[IgSource, IgRestClient]:
    http = JsonHttpClient(
        "ig",
        "https://demo-api.ig.com/gateway/deal",
        backoff_seconds=0,
        transport=httpx.MockTransport(stub),
    )
    clock = FakeClock(T0 + timedelta(hours=2))
    client = IgRestClient(
        http, SecretStr("key"), "user", SecretStr("secret"), limiter=InProcessRateLimiter(clock)
    )
    return IgSource(client, InstrumentMap.with_overrides(), clock), client


async def test_ig_logs_in_follows_pages_and_uses_mid_prices() -> None:
    stub = IgStub()
    source, _ = ig_source(stub)
    rows = await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=2))
    assert [row.timestamp for row in rows] == [T0, T0 + timedelta(hours=1)]
    assert rows[0].open == pytest.approx(1.091)
    assert rows[0].volume == 42
    prices_request = stub.price_requests[0]
    assert prices_request.url.path.endswith("/prices/CS.D.EURUSD.MINI.IP")
    assert prices_request.url.params["resolution"] == "HOUR"
    assert prices_request.url.params["from"] == "2024-01-08T10:00:00"


async def test_ig_expired_token_logs_in_again_once() -> None:
    stub = IgStub()
    source, _ = ig_source(stub)
    await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=2))
    stub.expire_next = True
    await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=2))
    assert stub.logins == 2


async def test_ig_spent_allowance_is_a_rate_limit() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/session"):
            return httpx.Response(200, headers={"CST": "c", "X-SECURITY-TOKEN": "x"}, json={})
        return httpx.Response(
            403, json={"errorCode": "error.public-api.exceeded-account-historical-data-allowance"}
        )

    source, _ = ig_source(handler)
    with pytest.raises(RateLimitedError):
        await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1))


async def test_ig_malformed_prices_payload_is_invalid_data() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/session"):
            return httpx.Response(200, headers={"CST": "c", "X-SECURITY-TOKEN": "x"}, json={})
        return httpx.Response(200, json={"unexpected": []})

    source, _ = ig_source(handler)
    with pytest.raises(InvalidDataError):
        await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1))


def test_yfinance_frame_in_exchange_time_is_read_and_empty_frame_gives_no_rows() -> None:
    index = pd.DatetimeIndex([pd.Timestamp("2024-01-08 10:00", tz="Europe/London")])
    frame = pd.DataFrame(
        {
            "Open": [1.09],
            "High": [1.1],
            "Low": [1.08],
            "Close": [1.095],
            "Volume": [0],
            "Dividends": [0.0],
        },
        index=index,
    )
    source = YFinanceSource(InstrumentMap.with_overrides(), YAHOO_CLOCK, history=lambda *_: frame)
    seen: list[tuple[object, ...]] = []

    def record_call(*args: object) -> pd.DataFrame:
        seen.append(args)
        return pd.DataFrame()

    source_empty = YFinanceSource(InstrumentMap.with_overrides(), YAHOO_CLOCK, history=record_call)
    rows = asyncio.run(source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1)))
    assert rows[0].timestamp == T0
    assert rows[0].close == 1.095
    assert (
        asyncio.run(source_empty.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1)))
        == []
    )
    assert seen[0][0] == "EURUSD=X"
    assert seen[0][3] == "1h"


async def test_yfinance_malformed_frame_and_failures_are_source_errors() -> None:
    broken = YFinanceSource(
        InstrumentMap.with_overrides(),
        YAHOO_CLOCK,
        history=lambda *_: pd.DataFrame({"Close": [1.0]}),
    )
    with pytest.raises(InvalidDataError):
        await broken.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1))

    def fail(*_: object) -> pd.DataFrame:
        raise OSError("connection reset")

    with pytest.raises(SourceUnavailableError):
        await YFinanceSource(
            InstrumentMap.with_overrides(), YAHOO_CLOCK, history=fail
        ).fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1))


class FakeConnector:
    """Stands in for Lightstreamer: records the connection and lets the test push updates."""

    def __init__(self) -> None:
        self.arguments: dict[str, object] = {}
        self.push: UpdateCallback | None = None
        self.fail: FailureCallback | None = None
        self.disconnected = False

    def connect(
        self,
        endpoint: str,
        *,
        user: str,
        password: str,
        items: list[str],
        fields: tuple[str, ...],
        on_update: UpdateCallback,
        on_failure: FailureCallback,
    ) -> FakeConnector:
        self.arguments = {
            "endpoint": endpoint,
            "user": user,
            "password": password,
            "items": items,
            "fields": fields,
        }
        self.push = on_update
        self.fail = on_failure
        return self

    def disconnect(self) -> None:
        self.disconnected = True


def millis(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


async def test_ig_stream_parses_tick_updates_and_they_aggregate_into_bars() -> None:
    connector = FakeConnector()
    _, client = ig_source(IgStub())
    stream = IgTickStream(client, InstrumentMap.with_overrides(), connector)
    updates: list[Mapping[str, str | None]] = [
        {
            "BID": "1.0950",
            "OFR": "1.0952",
            "LTP": None,
            "LTV": None,
            "UTM": millis(T0 + timedelta(seconds=1)),
        },
        {
            "BID": "1.0960",
            "OFR": "1.0962",
            "LTP": None,
            "LTV": None,
            "UTM": millis(T0 + timedelta(seconds=30)),
        },
        {"BID": "bad", "OFR": "1.0", "LTP": None, "LTV": None, "UTM": millis(T0)},
        {
            "BID": "1.0940",
            "OFR": "1.0942",
            "LTP": None,
            "LTV": None,
            "UTM": millis(T0 + timedelta(minutes=1)),
        },
    ]
    builder = BarBuilder("EURUSD", [Timeframe.M1], source="ig")
    iterator = stream.ticks(["EURUSD"])
    first = iterator.__anext__()
    task = asyncio.ensure_future(first)
    await asyncio.sleep(0)
    assert connector.arguments["items"] == ["CHART:CS.D.EURUSD.MINI.IP:TICK"]
    assert connector.arguments["password"] == "CST-cst1|XST-xst1"
    assert connector.arguments["user"] == "ABC123"
    assert connector.push is not None
    for update in updates:
        connector.push("CHART:CS.D.EURUSD.MINI.IP:TICK", update)
    ticks = [await task] + [await iterator.__anext__() for _ in range(2)]
    await stream.close()
    bars = [bar for tick in ticks for bar in builder.on_tick(tick)]
    assert [bar.opened_at for bar in bars] == [T0]
    assert [(bar.open, bar.high, bar.close) for bar in bars] == [
        pytest.approx((1.0951, 1.0961, 1.0961))
    ]
    assert stream.dropped_updates == 1
    assert connector.disconnected


def test_parse_tick_refuses_crossed_or_incomplete_quotes() -> None:
    assert parse_tick("EURUSD", {"BID": "1.1", "OFR": "1.0", "UTM": "1704708000000"}) is None
    assert parse_tick("EURUSD", {"BID": "1.1", "OFR": "1.2"}) is None


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(429, headers={"Retry-After": "30"}), RateLimitedError),
        (httpx.Response(500), SourceUnavailableError),
        (httpx.Response(200, content=b"<html>maintenance</html>"), InvalidDataError),
        (httpx.ReadTimeout("slow"), SourceTimeoutError),
    ],
    ids=["429", "500", "malformed", "timeout"],
)
async def test_ig_prices_failures_map_to_source_errors(
    answer: httpx.Response | Exception, error: type[Exception]
) -> None:
    # Arrange: the login works; the prices endpoint answers badly
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/session"):
            return httpx.Response(200, headers={"CST": "c", "X-SECURITY-TOKEN": "x"}, json={})
        if isinstance(answer, Exception):
            raise answer
        return answer

    source, _ = ig_source(handler)

    # Act / Assert
    with pytest.raises(error):
        await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1))


async def test_ig_empty_prices_give_no_rows() -> None:
    # Arrange
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/session"):
            return httpx.Response(200, headers={"CST": "c", "X-SECURITY-TOKEN": "x"}, json={})
        return httpx.Response(200, json={"prices": [], "metadata": {"pageData": {}}})

    source, _ = ig_source(handler)

    # Act
    rows = await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1))

    # Assert: an empty answer is the failover's to judge (it refuses it for history)
    assert rows == []


async def test_yfinance_call_that_hangs_times_out() -> None:
    # Arrange: the library call outlives the source's time-out
    def hang(*_: object) -> pd.DataFrame:
        time.sleep(0.5)
        return pd.DataFrame()

    source = YFinanceSource(
        InstrumentMap.with_overrides(), YAHOO_CLOCK, history=hang, timeout_seconds=0.05
    )

    # Act / Assert
    with pytest.raises(SourceTimeoutError):
        await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1))


async def test_source_latency_is_observed_per_request(
    clock: FakeClock, metrics: IngestionMetrics, telemetry: Telemetry
) -> None:
    # Arrange
    source = alpha_vantage(lambda _: httpx.Response(200, json=FX_INTRADAY), clock, metrics)

    # Act
    await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=3))

    # Assert
    count = telemetry.registry.get_sample_value(
        "tai_ingestion_source_latency_seconds_count",
        {"source": "alpha_vantage", "operation": "GET"},
    )
    assert count == 1


async def test_stream_failure_ends_the_ticks_after_those_already_received() -> None:
    # Arrange
    connector = FakeConnector()
    stub = IgStub()
    _, client = ig_source(stub)
    stream = IgTickStream(client, InstrumentMap.with_overrides(), connector)
    iterator = stream.ticks(["EURUSD"])
    first = asyncio.ensure_future(iterator.__anext__())
    await asyncio.sleep(0)
    assert connector.push is not None
    assert connector.fail is not None

    # Act: one tick, then the server closes the session
    update = {"BID": "1.0950", "OFR": "1.0952", "LTP": None, "LTV": None, "UTM": millis(T0)}
    connector.push("CHART:CS.D.EURUSD.MINI.IP:TICK", update)
    connector.fail("server error (41): session closed")

    # Assert: the tick comes out, then the failure; the next connection logs in again
    assert (await first).bid == 1.095
    with pytest.raises(StreamDisconnectedError):
        await iterator.__anext__()
    await client.session()
    assert stub.logins == 2


async def test_protocol_refusal_is_reported_as_such_and_keeps_the_rest_session() -> None:
    # Arrange
    connector = FakeConnector()
    stub = IgStub()
    _, client = ig_source(stub)
    stream = IgTickStream(client, InstrumentMap.with_overrides(), connector)
    iterator = stream.ticks(["EURUSD"])
    pending = asyncio.ensure_future(iterator.__anext__())
    await asyncio.sleep(0)
    assert connector.fail is not None

    # Act: what the library reports for IG's "CONERR,65,Unsupported protocol version: 2.5.0"
    connector.fail("server error (65): Unsupported protocol version: 2.5.0", 65)

    # Assert: a protocol refusal, naming the client; the REST tokens stay (no new login)
    with pytest.raises(StreamProtocolError, match=r"lightstreamer-client-lib 1\.0\.3"):
        await pending
    await client.session()
    assert stub.logins == 1
