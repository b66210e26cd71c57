"""Ingestion service: market data sources, validation, bars."""
