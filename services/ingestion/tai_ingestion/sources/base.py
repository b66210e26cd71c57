"""The source protocol, and the HTTP plumbing the network sources share."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from tai_core.clock import Clock
from tai_events.market import TickReceived, Timeframe
from tai_ingestion.calendar import align
from tai_ingestion.errors import (
    AuthenticationError,
    InvalidDataError,
    RateLimitedError,
    SourceError,
    SourceTimeoutError,
    SourceUnavailableError,
)
from tai_ingestion.instruments import Instrument, PriceBasis
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.models import RawBar


class MarketDataSource(Protocol):
    """A provider of OHLCV bars for the system's instruments.

    Both calls return raw rows (validated by the caller) for bars opened in [start, end),
    oldest first, and raise a SourceError subclass when the source cannot answer.
    """

    name: str

    def price_basis(self, instrument: Instrument) -> PriceBasis:
        """Return the adjustment and trading hours of the bars this source gives."""
        ...

    async def fetch_history(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> list[RawBar]:
        """Return the bars of ``symbol`` opened in [start, end)."""
        ...

    async def poll_recent(
        self, symbol: str, timeframe: Timeframe, since: datetime, now: datetime
    ) -> list[RawBar]:
        """Return the bars opened at or after ``since`` that have closed by ``now``."""
        ...


class TickStream(Protocol):
    """A live stream of quotes for the system's instruments."""

    name: str

    def ticks(self, symbols: list[str]) -> AsyncIterator[TickReceived]:
        """Yield quotes as they arrive, until closed."""
        ...

    async def close(self) -> None:
        """Stop streaming."""
        ...


def closed_rows(rows: list[RawBar], timeframe: Timeframe, now: datetime) -> list[RawBar]:
    """Keep rows whose bar has closed by ``now`` (a source's last bar is usually still open)."""
    kept = []
    for row in rows:
        if isinstance(row.timestamp, datetime) and row.timestamp + timeframe.duration > now:
            continue
        kept.append(row)
    return kept


def in_range(rows: list[RawBar], start: datetime, end: datetime | None) -> list[RawBar]:
    """Keep rows opened in [start, end); rows whose time did not parse stay, for the validator."""
    return [
        row
        for row in rows
        if not isinstance(row.timestamp, datetime)
        or (start <= row.timestamp and (end is None or row.timestamp < end))
    ]


def daily_label(day: date) -> datetime:
    """Return the open of the daily bar of trading date ``day``: 00:00 UTC of that date."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def aggregate_rows(rows: list[RawBar], timeframe: Timeframe) -> list[RawBar]:
    """Re-bucket time-ordered finer rows onto the UTC grid of ``timeframe``.

    Open of the first row, close of the last, highest high, lowest low, summed volume. A
    bucket holding a value that is not a number gets None there, so the validator rejects
    (and reports) the bar instead of it being built from part of its data; rows whose time
    did not parse pass through for the validator.
    """
    result: list[RawBar] = []
    buckets: dict[datetime, list[RawBar]] = {}
    for row in rows:
        if isinstance(row.timestamp, datetime):
            buckets.setdefault(align(row.timestamp, timeframe), []).append(row)
        else:
            result.append(row)
    for opened_at, members in sorted(buckets.items()):
        members.sort(key=lambda row: row.timestamp)
        opens, highs, lows, closes, volumes = (
            [_number(getattr(row, name)) for row in members]
            for name in ("open", "high", "low", "close", "volume")
        )
        result.append(
            RawBar(
                members[0].row,
                opened_at,
                opens[0],
                _combine(highs, max),
                _combine(lows, min),
                closes[-1],
                _combine(volumes, sum),
            )
        )
    return result


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _combine(values: list[float | None], how: Any) -> float | None:
    if any(value is None for value in values):
        return None
    return float(how(values))


class RequestBudget:
    """A source's documented request allowance (per minute and per day), on the injected clock.

    ``acquire`` never waits: when the budget is spent it raises RateLimitedError, so the
    failover moves to the next source instead of stalling the pipeline.
    """

    def __init__(
        self,
        source: str,
        clock: Clock,
        *,
        per_minute: int | None = None,
        per_day: int | None = None,
    ) -> None:
        self._source = source
        self._clock = clock
        self._limits = [
            (timedelta(minutes=1), limit, deque[datetime]())
            for limit in [per_minute]
            if limit is not None
        ] + [(timedelta(days=1), limit, deque[datetime]()) for limit in [per_day] if limit]

    def acquire(self) -> None:
        """Take one request from the budget, or raise RateLimitedError."""
        now = self._clock.now()
        for window, limit, stamps in self._limits:
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            if len(stamps) >= limit:
                retry_after = (stamps[0] + window - now).total_seconds()
                raise RateLimitedError(
                    self._source,
                    f"own budget of {limit} requests per {window} spent",
                    retry_after_seconds=retry_after,
                )
        for _window, _limit, stamps in self._limits:
            stamps.append(now)


class JsonHttpClient:
    """GET/POST JSON with timeouts; maps failures to SourceErrors and retries safe GETs.

    Retries (tenacity, exponential back-off) apply only to GETs, which are idempotent, and
    only for server errors, time-outs and transport failures; a 429 is never retried here
    because another source can answer at once.
    """

    def __init__(
        self,
        source: str,
        base_url: str,
        *,
        timeout_seconds: float = 10.0,
        retries: int = 3,
        backoff_seconds: float = 0.5,
        metrics: IngestionMetrics | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.source = source
        self._client = httpx.AsyncClient(
            base_url=base_url, timeout=timeout_seconds, transport=transport
        )
        self._retries = max(1, retries)
        self._backoff = backoff_seconds
        self._metrics = metrics

    async def get(
        self,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """GET with retries on transient failures; return the successful response."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retries),
            wait=wait_exponential(multiplier=self._backoff, max=self._backoff * 8),
            retry=retry_if_exception_type((SourceUnavailableError, SourceTimeoutError)),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send("GET", path, params=params, headers=headers)
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def post(
        self, path: str, *, json: Any, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """POST once (not idempotent: never retried)."""
        return await self._send("POST", path, json=json, headers=headers)

    async def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self._client.request(method, path, **options)
        except httpx.TimeoutException as error:
            raise self._count(
                SourceTimeoutError(self.source, f"{method} {path} timed out")
            ) from error
        except httpx.TransportError as error:
            raise self._count(
                SourceUnavailableError(self.source, f"{method} {path} failed: {error!r}")
            ) from error
        finally:
            if self._metrics is not None:
                self._metrics.source_latency.labels(source=self.source, operation=method).observe(
                    time.perf_counter() - started
                )
        if response.status_code == httpx.codes.TOO_MANY_REQUESTS:
            retry_after = response.headers.get("Retry-After")
            raise self._count(
                RateLimitedError(
                    self.source,
                    f"{method} {path}: HTTP 429",
                    retry_after_seconds=float(retry_after)
                    if retry_after and retry_after.isdigit()
                    else None,
                )
            )
        if response.status_code in {httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN}:
            refused = AuthenticationError(
                self.source, f"{method} {path}: HTTP {response.status_code}"
            )
            refused.detail = response.text[:500]
            raise self._count(refused)
        if response.status_code >= httpx.codes.INTERNAL_SERVER_ERROR:
            raise self._count(
                SourceUnavailableError(self.source, f"{method} {path}: HTTP {response.status_code}")
            )
        if response.status_code >= httpx.codes.BAD_REQUEST:
            invalid = InvalidDataError(
                self.source, f"{method} {path}: HTTP {response.status_code} {response.text[:200]}"
            )
            invalid.detail = response.text[:500]
            raise self._count(invalid)
        return response

    def _count(self, error: SourceError) -> SourceError:
        if self._metrics is not None:
            self._metrics.source_errors.labels(source=self.source, reason=error.reason).inc()
        return error

    @property
    def is_closed(self) -> bool:
        """Return True once the connection pool is closed."""
        return self._client.is_closed

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def json_body(source: str, response: httpx.Response) -> Any:
    """Return the decoded JSON body, or raise InvalidDataError for a malformed payload."""
    try:
        return response.json()
    except ValueError as error:
        raise InvalidDataError(source, f"malformed JSON: {response.text[:200]!r}") from error
