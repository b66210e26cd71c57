"""Ingestion settings as deployments set them."""

from __future__ import annotations

import pytest

from tai_core.clock import FakeClock
from tai_core.settings import load_settings
from tai_ingestion.config import IngestionSettings, SourceName
from tai_ingestion.factory import build_sources
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.metrics import IngestionMetrics
from tests.unit.ingestion.conftest import MONDAY


async def test_empty_credentials_from_compose_leave_the_sources_out(
    monkeypatch: pytest.MonkeyPatch, metrics: IngestionMetrics
) -> None:
    # Arrange: compose passes an unset ${IG_API_KEY:-} as an empty value
    for name in (
        "ALPHAVANTAGE_API_KEY",
        "INGESTION_IG_API_KEY",
        "INGESTION_IG_IDENTIFIER",
        "INGESTION_IG_PASSWORD",
    ):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("INGESTION_SOURCES", '["ig", "alpha_vantage", "yfinance"]')
    settings = load_settings(IngestionSettings)
    # Act
    async with build_sources(
        settings, InstrumentMap.with_overrides(), FakeClock(MONDAY), metrics
    ) as sources:
        names = [source.name for source in sources.polling]
    # Assert
    assert settings.alpha_vantage_api_key is None
    assert settings.ig_api_key is None
    assert names == [SourceName.YFINANCE.value]


def test_empty_redis_url_still_turns_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "")
    assert load_settings(IngestionSettings).redis_url == ""
