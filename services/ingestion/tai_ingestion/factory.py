"""Build the configured sources, in priority order, from settings; own the clients they use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import httpx

from tai_core.clock import Clock
from tai_ingestion.config import IngestionSettings
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.models import SourceName
from tai_ingestion.sources.alphavantage import AlphaVantageSource
from tai_ingestion.sources.base import JsonHttpClient, MarketDataSource, TickStream
from tai_ingestion.sources.ig import IgRestClient, IgSource
from tai_ingestion.sources.ig_stream import IgTickStream, StreamConnector
from tai_ingestion.sources.replay import FileSource
from tai_ingestion.sources.yahoo import (
    HistoryFunction,
    SplitsFunction,
    YFinanceSource,
    yfinance_history,
    yfinance_splits,
)
from tai_store.ratelimit import RateLimiter, create_rate_limiter
from tai_telemetry.logging import get_logger


@dataclass(frozen=True, slots=True)
class Connectors:
    """How the sources reach their services; tests swap in stubs and recorded responses."""

    http_transport: httpx.AsyncBaseTransport | None = None
    stream_connector: StreamConnector | None = None
    rate_limiter: RateLimiter | None = None
    """Replaces the allowance limiter (else Redis at REDIS_URL, or in-process)."""
    yfinance_history: HistoryFunction = yfinance_history
    yfinance_splits: SplitsFunction = yfinance_splits


@dataclass
class Sources:
    """The polling sources in priority order, the live stream if any, and their HTTP clients.

    Whoever builds it closes it (``aclose`` or ``async with``): that closes every HTTP client.
    """

    polling: list[MarketDataSource] = field(default_factory=list)
    open_stream: Callable[[], TickStream] | None = None
    http_clients: list[JsonHttpClient] = field(default_factory=list)
    owned_limiter: RateLimiter | None = None

    async def aclose(self) -> None:
        """Close every HTTP client the sources use, and the limiter they were given."""
        for client in self.http_clients:
            await client.close()
        if self.owned_limiter is not None:
            await self.owned_limiter.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def build_sources(
    settings: IngestionSettings,
    instruments: InstrumentMap,
    clock: Clock,
    metrics: IngestionMetrics,
    connectors: Connectors | None = None,
) -> Sources:
    """Return the configured sources in priority order; those lacking credentials are left out.

    The IG tick stream is built when ``stream_enabled`` is set; it shares the IG REST login.
    """
    log = get_logger("ingestion.sources")
    seams = connectors or Connectors()
    built = Sources()

    def http(name: str, base_url: str) -> JsonHttpClient:
        client = JsonHttpClient(
            name,
            base_url,
            timeout_seconds=settings.http_timeout_seconds,
            retries=settings.http_retries,
            backoff_seconds=settings.http_backoff_seconds,
            metrics=metrics,
            transport=seams.http_transport,
        )
        built.http_clients.append(client)
        return client

    ig_client: IgRestClient | None = None
    wants_ig = SourceName.IG in settings.sources or settings.stream_enabled
    if wants_ig and settings.ig_api_key and settings.ig_identifier and settings.ig_password:
        limiter = seams.rate_limiter
        if limiter is None:
            # The key's allowances are shared with execution through Redis when it is set.
            limiter = built.owned_limiter = create_rate_limiter(
                settings.redis_url, clock, prefix=settings.cache_prefix
            )
        ig_client = IgRestClient(
            http("ig", settings.ig_url),
            settings.ig_api_key,
            settings.ig_identifier,
            settings.ig_password,
            limiter=limiter,
        )
    for name in settings.sources:
        if name is SourceName.YFINANCE:
            built.polling.append(
                YFinanceSource(
                    instruments,
                    clock,
                    history=seams.yfinance_history,
                    splits=seams.yfinance_splits,
                    timeout_seconds=settings.http_timeout_seconds * 3,
                )
            )
        elif name is SourceName.ALPHA_VANTAGE:
            if settings.alpha_vantage_api_key is None:
                log.warning("alpha_vantage skipped: no API key configured")
                continue
            built.polling.append(
                AlphaVantageSource(
                    http("alpha_vantage", settings.alpha_vantage_base_url),
                    settings.alpha_vantage_api_key.get_secret_value(),
                    instruments,
                    clock,
                    requests_per_minute=settings.alpha_vantage_requests_per_minute,
                    requests_per_day=settings.alpha_vantage_requests_per_day,
                )
            )
        elif name is SourceName.IG:
            if ig_client is None:
                log.warning("ig skipped: INGESTION_IG_API_KEY/IDENTIFIER/PASSWORD not all set")
                continue
            built.polling.append(IgSource(ig_client, instruments, clock))
        elif settings.replay_file is not None:
            built.polling.append(
                FileSource(
                    settings.replay_file, symbol=settings.symbol, timeframe=settings.timeframe
                )
            )
    if settings.stream_enabled and ig_client is not None:
        stream_client = ig_client

        def open_stream() -> TickStream:
            return IgTickStream(stream_client, instruments, seams.stream_connector)

        built.open_stream = open_stream
    return built
