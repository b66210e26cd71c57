"""Build the configured sources, in priority order, from settings."""

from __future__ import annotations

from tai_core.clock import Clock
from tai_ingestion.config import IngestionSettings, SourceName
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.sources.alphavantage import AlphaVantageSource
from tai_ingestion.sources.base import JsonHttpClient, MarketDataSource
from tai_ingestion.sources.ig import IgRestClient, IgSource
from tai_ingestion.sources.replay import FileSource
from tai_ingestion.sources.yahoo import YFinanceSource
from tai_telemetry.logging import get_logger


def build_sources(
    settings: IngestionSettings,
    instruments: InstrumentMap,
    clock: Clock,
    metrics: IngestionMetrics,
) -> list[MarketDataSource]:
    """Return the configured sources in priority order; those lacking credentials are left out."""
    log = get_logger("ingestion.sources")
    sources: list[MarketDataSource] = []

    def http(name: str, base_url: str) -> JsonHttpClient:
        return JsonHttpClient(
            name,
            base_url,
            timeout_seconds=settings.http_timeout_seconds,
            retries=settings.http_retries,
            backoff_seconds=settings.http_backoff_seconds,
            metrics=metrics,
        )

    for name in settings.sources:
        if name is SourceName.YFINANCE:
            sources.append(
                YFinanceSource(instruments, timeout_seconds=settings.http_timeout_seconds * 3)
            )
        elif name is SourceName.ALPHA_VANTAGE:
            if settings.alpha_vantage_api_key is None:
                log.warning("alpha_vantage skipped: no API key configured")
                continue
            sources.append(
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
            if not (settings.ig_api_key and settings.ig_identifier and settings.ig_password):
                log.warning("ig skipped: INGESTION_IG_API_KEY/IDENTIFIER/PASSWORD not all set")
                continue
            client = IgRestClient(
                http("ig", settings.ig_url),
                settings.ig_api_key,
                settings.ig_identifier,
                settings.ig_password,
            )
            sources.append(IgSource(client, instruments))
        elif settings.replay_file is not None:
            sources.append(
                FileSource(
                    settings.replay_file, symbol=settings.symbol, timeframe=settings.timeframe
                )
            )
    return sources
