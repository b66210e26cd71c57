"""Fakes for driving the ingestion app live: a manual timer, IG REST and Lightstreamer stand-ins."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import httpx

from tai_core.clock import FakeClock
from tai_events.market import Timeframe
from tai_ingestion.calendar import align
from tai_ingestion.sources.ig import RESOLUTIONS
from tai_ingestion.sources.ig_stream import FailureCallback, UpdateCallback, tick_item
from tests import ig_responses

EURUSD_ITEM = tick_item("CS.D.EURUSD.MINI.IP")
BY_RESOLUTION = {resolution: timeframe for timeframe, resolution in RESOLUTIONS.items()}


def market_price(at: datetime) -> float:
    """Return the synthetic mid price the IG REST stub quotes for a bar opened at ``at``."""
    return round(1.1 + (at.timestamp() % 86_400) / 86_400_000, 6)


class ManualTimer:
    """The app's ``sleep``: a sleeper wakes only when the test moves the clock past its deadline."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock reaches now + ``seconds``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.clock.now() + timedelta(seconds=seconds), future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            self._sleepers.remove(entry)

    def deadlines(self) -> list[datetime]:
        """Return when the current sleepers wake, soonest first."""
        return sorted(deadline for deadline, future in self._sleepers if not future.done())

    async def wake_at(self, moment: datetime) -> None:
        """Wait until a sleeper is due at ``moment`` (the app is idle until then), then go there."""
        await eventually(lambda: moment in self.deadlines())
        self.advance_to(moment)

    def advance_to(self, moment: datetime) -> None:
        """Set the clock to ``moment`` and wake every sleeper due by then."""
        self.clock.set(moment)
        for deadline, future in self._sleepers:
            if deadline <= moment and not future.done():
                future.set_result(None)


async def eventually(condition: Callable[[], bool], *, within_seconds: float = 5.0) -> None:
    """Wait until ``condition()`` holds (the app works in tasks, the store in threads)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within_seconds}s")
        await asyncio.sleep(0.005)


class IgRestStub:
    """IG REST as recorded: login, and ``/prices`` bars of a synthetic market per resolution."""

    def __init__(self) -> None:
        self.logins = 0
        self.price_requests: list[tuple[Timeframe, datetime, datetime]] = []
        self.failing = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/session"):
            self.logins += 1
            assert json.loads(request.content)["identifier"] == "user"
            return httpx.Response(
                200,
                headers={"CST": f"cst{self.logins}", "X-SECURITY-TOKEN": f"xst{self.logins}"},
                json=ig_responses.session_body(),
            )
        if self.failing:
            return httpx.Response(503, json={"errorCode": "system.error"})
        if request.url.path.endswith("/operations/application"):
            return httpx.Response(200, json=ig_responses.applications_body("key"))
        timeframe = BY_RESOLUTION[request.url.params["resolution"]]
        start = datetime.fromisoformat(request.url.params["from"]).replace(tzinfo=UTC)
        end = datetime.fromisoformat(request.url.params["to"]).replace(tzinfo=UTC)
        self.price_requests.append((timeframe, start, end))
        prices = []
        moment = align(start, timeframe)
        if moment < start:
            moment += timeframe.duration
        while moment <= end:
            mid = market_price(moment)
            prices.append(
                {
                    "snapshotTimeUTC": moment.strftime("%Y-%m-%dT%H:%M:%S"),
                    "openPrice": {"bid": mid - 0.0001, "ask": mid + 0.0001},
                    "highPrice": {"bid": mid + 0.0004, "ask": mid + 0.0006},
                    "lowPrice": {"bid": mid - 0.0006, "ask": mid - 0.0004},
                    "closePrice": {"bid": mid - 0.0001, "ask": mid + 0.0001},
                    "lastTradedVolume": 7,
                }
            )
            moment += timeframe.duration
        return httpx.Response(200, json=ig_responses.prices_body(prices))


class FakeStreamConnector:
    """Stands in for Lightstreamer: each connection can be fed updates or failed by the test."""

    def __init__(self) -> None:
        self.connections: list[dict[str, object]] = []
        self._push: UpdateCallback | None = None
        self._fail: FailureCallback | None = None
        self.disconnects = 0

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
    ) -> FakeStreamConnector:
        self.connections.append(
            {"endpoint": endpoint, "user": user, "password": password, "items": items}
        )
        self._push, self._fail = on_update, on_failure
        return self

    def disconnect(self) -> None:
        self.disconnects += 1

    def push(self, at: datetime, bid: float, *, spread: float = 0.0002) -> None:
        """Send one tick update on the newest connection."""
        assert self._push is not None, "no connection yet"
        fields: Mapping[str, str | None] = {
            "BID": f"{bid:.5f}",
            "OFR": f"{bid + spread:.5f}",
            "LTP": None,
            "LTV": None,
            "UTM": str(int(at.timestamp() * 1000)),
        }
        self._push(EURUSD_ITEM, fields)

    def fail(self, message: str) -> None:
        """Make the server end the newest connection."""
        assert self._fail is not None, "no connection yet"
        self._fail(message)
