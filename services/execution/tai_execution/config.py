"""Execution service settings."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tai_core.settings import ServiceSettings
from tai_events.market import Timeframe


class ExecutionSettings(ServiceSettings):
    """Settings of the execution service (env prefix ``EXECUTION_``)."""

    model_config = SettingsConfigDict(env_prefix="EXECUTION_", frozen=True, extra="ignore")

    approval_public_keys: str = Field(
        description="PEM public key(s) of risk's approval signer; several during a rotation"
    )
    account: str = Field(default="paper", min_length=1, max_length=64)
    initial_cash: float = Field(default=100_000.0, gt=0)
    commission_rate: float = Field(default=0.0002, ge=0, lt=0.1)
    slippage_bps: float = Field(default=0.0, ge=0)
    timeframe: Timeframe = Timeframe.H1
    outbox_sweep_seconds: float = Field(
        default=1.0, ge=0, description="timer publishing outbox leftovers; 0 disables"
    )
