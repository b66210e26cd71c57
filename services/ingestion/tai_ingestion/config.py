"""Ingestion service settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tai_core.settings import ServiceSettings
from tai_events.market import Timeframe


class IngestionSettings(ServiceSettings):
    """Settings of the ingestion service (env prefix ``INGESTION_``)."""

    model_config = SettingsConfigDict(env_prefix="INGESTION_", frozen=True, extra="ignore")

    replay_file: Path | None = Field(default=None, description="CSV of bars to replay")
    symbol: str = Field(default="EURUSD", pattern=r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
    timeframe: Timeframe = Timeframe.H1
    replay_speed: float = Field(
        default=0.0, ge=0, description="bars per second; 0 replays as fast as the bus confirms"
    )
    exit_when_done: bool = Field(default=False, description="stop the process after a replay")
