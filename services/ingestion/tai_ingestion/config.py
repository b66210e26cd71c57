"""Ingestion service settings (env prefix ``INGESTION_``; nested values as JSON)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from tai_core.settings import ServiceSettings
from tai_events.market import Timeframe
from tai_ingestion.bars import check_derivable
from tai_ingestion.instruments import Instrument
from tai_ingestion.models import SourceName
from tai_ingestion.sources.ig import DEMO_BASE_URL, LIVE_BASE_URL
from tai_ingestion.validation import ValidationConfig


class IgAccountType(StrEnum):
    """Which IG environment to use."""

    DEMO = "demo"
    LIVE = "live"


class IngestionSettings(ServiceSettings):
    """Settings of the ingestion service (env prefix ``INGESTION_``).

    Modes: a replay file is replayed; otherwise ``stream_enabled`` builds bars from IG live
    ticks (polling the sources while the stream is down), else ``poll_enabled`` polls the
    sources at each bar close. Live modes cache the latest bars and quotes in Redis at
    ``REDIS_URL``, where IG's request allowances are also counted with execution's (an empty
    ``REDIS_URL`` turns the cache off and counts the allowances in-process).
    """

    model_config = SettingsConfigDict(env_prefix="INGESTION_", frozen=True, extra="ignore")

    replay_file: Path | None = Field(default=None, description="CSV or Parquet of bars to replay")
    symbol: str = Field(default="EURUSD", pattern=r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
    timeframe: Timeframe = Timeframe.H1
    replay_speed: float = Field(
        default=0.0, ge=0, description="bars per second; 0 replays as fast as the bus confirms"
    )
    exit_when_done: bool = Field(default=False, description="stop the process after a replay")
    replay_start: datetime | None = Field(default=None, description="replay bars from this time")

    # Live modes (when no replay file is set).
    poll_enabled: bool = Field(default=False, description="poll sources for new bars")
    timeframes: list[Timeframe] = Field(
        default_factory=lambda: [Timeframe.D1],
        description=(
            "timeframes built besides `timeframe` (live and in replays; each a multiple of the "
            "shortest; daily by default, for the strategies that confirm on it)"
        ),
    )
    sources: list[SourceName] = Field(
        default_factory=lambda: [SourceName.IG, SourceName.ALPHA_VANTAGE, SourceName.YFINANCE],
        description="failover priority order, first is primary",
    )
    instruments: dict[str, Instrument] = Field(
        default_factory=dict, description="instrument definitions added to or replacing defaults"
    )
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    failover_cooldown_seconds: float = Field(default=60.0, gt=0)
    max_rejected_fraction: float = Field(
        default=0.5, ge=0, le=1, description="share of rejected rows that fails a source over"
    )
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    http_retries: int = Field(default=3, ge=1, le=10)
    http_backoff_seconds: float = Field(default=0.5, ge=0)

    alpha_vantage_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("ingestion_alpha_vantage_api_key", "ALPHAVANTAGE_API_KEY"),
    )
    alpha_vantage_base_url: str = "https://www.alphavantage.co"
    alpha_vantage_requests_per_minute: int | None = Field(default=5, ge=1)
    alpha_vantage_requests_per_day: int | None = Field(default=25, ge=1)

    ig_api_key: SecretStr | None = None
    ig_identifier: str | None = None
    ig_password: SecretStr | None = None
    ig_account_type: IgAccountType = IgAccountType.DEMO
    ig_base_url: str | None = Field(default=None, description="overrides the demo/live URL")

    # IG live prices (after the IG settings, which the check below reads).
    stream_enabled: bool = Field(
        default=False,
        description="build bars from IG live ticks; poll the sources while the stream is down",
    )
    publish_ticks: bool = Field(default=True, description="publish and cache each streamed quote")
    stream_retry_seconds: float = Field(
        default=5.0, gt=0, description="first wait before reconnecting a failed stream"
    )
    stream_max_retry_seconds: float = Field(
        default=300.0, gt=0, description="longest wait between reconnection attempts"
    )
    stream_idle_timeout_seconds: float = Field(
        default=120.0, gt=0, description="silence while the market is open that fails the stream"
    )

    # Bars from ticks and caching.
    late_tick_grace_seconds: float = Field(default=0.0, ge=0)
    bar_cache_ttl_seconds: float = Field(default=86_400.0, gt=0)
    quote_cache_ttl_seconds: float = Field(default=60.0, gt=0)
    cache_prefix: str = Field(default="tai:", description="namespace of the Redis keys")

    @field_validator(
        "alpha_vantage_api_key", "ig_api_key", "ig_identifier", "ig_password", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose passes an unset optional credential (${IG_API_KEY:-}) as an empty value.
        return None if value == "" else value

    @field_validator("timeframes")
    @classmethod
    def _check_derivable(cls, timeframes: list[Timeframe], info: ValidationInfo) -> list[Timeframe]:
        timeframe = info.data.get("timeframe")
        if timeframe is not None:  # else `timeframe` itself is reported
            check_derivable([timeframe, *timeframes])
        return timeframes

    @field_validator("stream_enabled")
    @classmethod
    def _check_stream_credentials(cls, enabled: bool, info: ValidationInfo) -> bool:
        names = ("ig_api_key", "ig_identifier", "ig_password")
        if enabled and not all(info.data.get(name) for name in names):
            raise ValueError(
                "needs INGESTION_IG_API_KEY, INGESTION_IG_IDENTIFIER and INGESTION_IG_PASSWORD"
            )
        return enabled

    @property
    def live_timeframes(self) -> list[Timeframe]:
        """Return the timeframes built live, shortest first."""
        return check_derivable([self.timeframe, *self.timeframes])

    @property
    def ig_url(self) -> str:
        """Return the IG REST base URL for the configured account type."""
        if self.ig_base_url:
            return self.ig_base_url
        return LIVE_BASE_URL if self.ig_account_type is IgAccountType.LIVE else DEMO_BASE_URL
