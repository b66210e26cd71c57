"""Ingestion metrics, registered in the service's own Prometheus registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tai_events.market import BarClosed

SOURCE_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class IngestionMetrics:
    """Bars ingested, rows rejected or repaired by reason, source latency, failovers, cache."""

    bars_ingested: Counter
    last_bar_time: Gauge
    rows_rejected: Counter
    rows_repaired: Counter
    rows_flagged: Counter
    source_latency: Histogram
    source_errors: Counter
    failovers: Counter
    late_ticks: Counter
    cache_hits: Counter
    cache_misses: Counter
    cache_hit_ratio: Gauge
    cache_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> IngestionMetrics:
        """Register the ingestion metrics in ``registry``."""
        return cls(
            bars_ingested=Counter(
                "tai_ingestion_bars",
                "Bars stored and published",
                ["symbol", "timeframe", "source"],
                registry=registry,
            ),
            last_bar_time=Gauge(
                "tai_market_data_last_timestamp_seconds",
                "Close time of the newest bar published, Unix seconds (stale-data alerts)",
                ["symbol", "timeframe"],
                registry=registry,
            ),
            rows_rejected=Counter(
                "tai_ingestion_rows_rejected",
                "Rows rejected by validation",
                ["rule"],
                registry=registry,
            ),
            rows_repaired=Counter(
                "tai_ingestion_rows_repaired",
                "Rows repaired by validation",
                ["rule"],
                registry=registry,
            ),
            rows_flagged=Counter(
                "tai_ingestion_rows_flagged",
                "Rows kept but flagged by validation",
                ["rule"],
                registry=registry,
            ),
            source_latency=Histogram(
                "tai_ingestion_source_latency_seconds",
                "Time a source took to answer",
                ["source", "operation"],
                buckets=SOURCE_LATENCY_BUCKETS,
                registry=registry,
            ),
            source_errors=Counter(
                "tai_ingestion_source_errors",
                "Source requests that failed",
                ["source", "reason"],
                registry=registry,
            ),
            failovers=Counter(
                "tai_ingestion_failovers",
                "Switches from a failing source to the next",
                ["from_source", "to_source", "reason"],
                registry=registry,
            ),
            late_ticks=Counter(
                "tai_ingestion_late_ticks",
                "Ticks for bars already closed",
                ["symbol", "outcome"],
                registry=registry,
            ),
            cache_hits=Counter(
                "tai_ingestion_cache_hits", "Cache reads answered", registry=registry
            ),
            cache_misses=Counter(
                "tai_ingestion_cache_misses", "Cache reads not answered", registry=registry
            ),
            cache_hit_ratio=Gauge(
                "tai_ingestion_cache_hit_ratio", "Cache hits / reads", registry=registry
            ),
            cache_errors=Counter(
                "tai_ingestion_cache_errors",
                "Cache reads or writes that failed (the cache is best effort)",
                ["operation"],
                registry=registry,
            ),
        )

    def record_published(self, bar: BarClosed) -> None:
        """Count a published bar and remember how fresh the market data is."""
        self.bars_ingested.labels(
            symbol=bar.symbol, timeframe=bar.timeframe.value, source=bar.source
        ).inc()
        self.last_bar_time.labels(symbol=bar.symbol, timeframe=bar.timeframe.value).set(
            bar.closed_at.timestamp()
        )

    def record_cache_read(self, *, found: bool, hit_ratio: float) -> None:
        """Count one cache read and publish the cache's own hit ratio."""
        (self.cache_hits if found else self.cache_misses).inc()
        self.cache_hit_ratio.set(hit_ratio)
