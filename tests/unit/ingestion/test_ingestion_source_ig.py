"""IG prices within the key's allowances, as IG documents and answers them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from tai_bus.memory import InMemoryBus
from tai_core.clock import FakeClock
from tai_events.market import Timeframe
from tai_ingestion.calendar import ForexCalendar
from tai_ingestion.errors import RateLimitedError, UnsupportedRequestError
from tai_ingestion.failover import AllSourcesFailedError, FailoverSource
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.sources.base import JsonHttpClient
from tai_ingestion.sources.ig import IgAllowances, IgRestClient, IgSource, allowance_key
from tai_ingestion.validation import Validator
from tai_store.ratelimit import InProcessRateLimiter, RateLimiter
from tests import ig_responses

NOW = datetime(2024, 6, 19, 12, 0, tzinfo=UTC)
API_KEY = "key"


class IgPricesStub:
    """IG's REST answers for ingestion: login, the key's allowances, priced pages, refusals."""

    def __init__(self, *, account_overall: int = 30, remaining: int = 9_000) -> None:
        self.account_overall = account_overall
        self.remaining = remaining
        self.refusal: tuple[int, str] | None = None
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/session"):
            assert json.loads(request.content)["identifier"] == "user"
            return httpx.Response(
                200,
                headers={"CST": "cst", "X-SECURITY-TOKEN": "xst"},
                json=ig_responses.session_body(),
            )
        if path.endswith("/operations/application"):
            return httpx.Response(
                200,
                json=ig_responses.applications_body(API_KEY, account_overall=self.account_overall),
            )
        if self.refusal is not None:
            status, code = self.refusal
            return httpx.Response(status, json=ig_responses.error_body(code))
        start = datetime.fromisoformat(request.url.params["from"]).replace(tzinfo=UTC)
        points = [ig_responses.price_point(start, 1.07)]
        self.remaining = max(0, self.remaining - len(points))
        return httpx.Response(
            200,
            json=ig_responses.prices_body(
                points, remaining=self.remaining, expiry_seconds=3 * 24 * 3600
            ),
        )

    def prices_asked(self) -> int:
        return sum("/prices/" in request.url.path for request in self.requests)


def ig(
    stub: IgPricesStub, clock: FakeClock, limiter: RateLimiter | None = None
) -> tuple[IgSource, IgRestClient]:
    http = JsonHttpClient(
        "ig",
        "https://demo-api.ig.com/gateway/deal",
        backoff_seconds=0,
        transport=httpx.MockTransport(stub),
    )
    client = IgRestClient(
        http,
        SecretStr(API_KEY),
        "user",
        SecretStr("secret"),
        limiter=limiter or InProcessRateLimiter(clock),
    )
    return IgSource(client, InstrumentMap.with_overrides(), clock), client


async def hour(source: IgSource) -> None:
    await source.fetch_history("EURUSD", Timeframe.H1, NOW - timedelta(hours=1), NOW)


async def test_allowances_are_read_from_the_account_and_kept() -> None:
    # Arrange
    stub = IgPricesStub(account_overall=3)
    clock = FakeClock(NOW)
    source, client = ig(stub, clock)
    # Act: the allowances request and two prices requests spend the account's 3 per minute
    await hour(source)
    await hour(source)
    with pytest.raises(RateLimitedError, match="non-trading allowance of 3") as raised:
        await hour(source)
    # Assert: refused here, not by IG
    assert client.allowances == IgAllowances(60, 3, 100, 10_000)
    assert stub.prices_asked() == 2
    assert raised.value.retry_after_seconds == pytest.approx(60.0)
    clock.advance(timedelta(minutes=1))
    await hour(source)
    assert stub.prices_asked() == 3


async def test_two_services_on_one_key_draw_on_one_allowance() -> None:
    # Arrange: ingestion and execution share the limiter (Redis in a deployment)
    clock = FakeClock(NOW)
    shared = InProcessRateLimiter(clock)
    first, second = IgPricesStub(account_overall=4), IgPricesStub(account_overall=4)
    one, _ = ig(first, clock, shared)
    other, _ = ig(second, clock, shared)
    # Act: each reads the allowances (2 requests), then each asks once (4 in all)
    await hour(one)
    await hour(other)
    # Assert
    with pytest.raises(RateLimitedError):
        await hour(one)
    assert allowance_key(API_KEY, "ABC123", "non-trading") == "ig:account-ABC123:non-trading"


async def test_spent_weekly_price_allowance_is_not_asked_again_until_it_resets() -> None:
    # Arrange: the answer says nothing is left, resetting in three days
    stub = IgPricesStub(remaining=1)
    clock = FakeClock(NOW)
    source, _ = ig(stub, clock)
    await hour(source)
    # Act
    clock.advance(timedelta(minutes=5))
    with pytest.raises(RateLimitedError) as raised:
        await hour(source)
    # Assert
    assert stub.prices_asked() == 1
    assert raised.value.retry_after_seconds == pytest.approx(3 * 24 * 3600 - 300)


async def test_historical_allowance_refusal_rests_ig_until_the_reset_not_a_minute(
    bus: InMemoryBus, metrics: IngestionMetrics
) -> None:
    # Arrange: one answer (the reset is in three days), then IG refuses with 403
    stub = IgPricesStub()
    clock = FakeClock(NOW)
    source, _ = ig(stub, clock)
    failover = FailoverSource(
        [source],
        validator=Validator(calendar=ForexCalendar()),
        bus=bus,
        clock=clock,
        metrics=metrics,
    )
    await hour(source)
    stub.refusal = ig_responses.HISTORICAL_ALLOWANCE
    # Act: the failover asks once, then again every few minutes for an hour
    for _ in range(12):
        with pytest.raises(AllSourcesFailedError):
            await failover.poll_recent("EURUSD", Timeframe.H1, None, NOW - timedelta(hours=1))
        clock.advance(timedelta(minutes=5))
    # Assert: IG was asked for prices twice in all (the answer, then the one refusal)
    assert stub.prices_asked() == 2


async def test_historical_allowance_refusal_without_a_known_reset_rests_for_hours() -> None:
    # Arrange
    stub = IgPricesStub()
    stub.refusal = ig_responses.HISTORICAL_ALLOWANCE
    source, _ = ig(stub, FakeClock(NOW))
    # Act
    with pytest.raises(RateLimitedError) as raised:
        await hour(source)
    # Assert
    assert raised.value.retry_after_seconds == 6 * 3600


async def test_unknown_epic_is_unsupported_not_invalid_data() -> None:
    # Arrange
    stub = IgPricesStub()
    stub.refusal = ig_responses.EPIC_NOT_FOUND
    source, _ = ig(stub, FakeClock(NOW))
    # Act / Assert
    with pytest.raises(UnsupportedRequestError, match="epic-not-found"):
        await hour(source)


async def test_daily_fx_bars_are_labelled_by_igs_local_date() -> None:
    # Arrange: IG's FX day opens the evening before in UTC
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/session"):
            return httpx.Response(
                200, headers={"CST": "c", "X-SECURITY-TOKEN": "x"}, json=ig_responses.session_body()
            )
        if request.url.path.endswith("/operations/application"):
            return httpx.Response(200, json=ig_responses.applications_body(API_KEY))
        day = ig_responses.price_point(
            datetime(2024, 6, 17, 21, tzinfo=UTC), 1.07, local=datetime(2024, 6, 18)
        )
        return httpx.Response(200, json=ig_responses.prices_body([day]))

    http = JsonHttpClient(
        "ig", "https://ig", backoff_seconds=0, transport=httpx.MockTransport(handler)
    )
    clock = FakeClock(NOW)
    client = IgRestClient(
        http, SecretStr(API_KEY), "user", SecretStr("pw"), limiter=InProcessRateLimiter(clock)
    )
    source = IgSource(client, InstrumentMap.with_overrides(), clock)
    # Act
    rows = await source.fetch_history(
        "EURUSD", Timeframe.D1, datetime(2024, 6, 18, tzinfo=UTC), datetime(2024, 6, 19, tzinfo=UTC)
    )
    # Assert
    assert [row.timestamp for row in rows] == [datetime(2024, 6, 18, tzinfo=UTC)]
