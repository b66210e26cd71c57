"""Market data sources behind one protocol."""

from tai_ingestion.sources.base import MarketDataSource, TickStream

__all__ = ["MarketDataSource", "TickStream"]
