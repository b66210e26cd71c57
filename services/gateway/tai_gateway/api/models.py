"""Request and response bodies of the API."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tai_events.base import Name, ScalarValue, Symbol
from tai_gateway.auth import Role


class TokenResponse(BaseModel):
    """An issued bearer token."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    role: Role


class ControlRequest(BaseModel):
    """Why a halt or resume is requested."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class FlattenRequest(ControlRequest):
    """Flatten one symbol, or every position when ``symbol`` is omitted."""

    symbol: Symbol | None = None


class StrategyConfiguration(BaseModel):
    """Enable or disable a strategy and/or change its parameters."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    parameters: dict[Name, ScalarValue] = Field(default_factory=dict, max_length=32)
    reason: str = Field(default="", max_length=2000)


class BacktestRunRequest(BaseModel):
    """Start a backtest on one of the research data files."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(default="sma_cross", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    data_file: str = Field(min_length=1, max_length=128)
    cash: float = Field(default=100_000.0, gt=0, le=1e12)
    commission: float = Field(default=0.0002, ge=0, lt=0.1)
    parameters: dict[Name, float] = Field(default_factory=dict, max_length=32)


class ControlResponse(BaseModel):
    """The command published for a control request."""

    action: str
    command: str
    message_id: str


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return a DataFrame as JSON-ready records (ISO timestamps, NaN as null)."""
    if frame.empty:
        return []
    loaded: list[dict[str, Any]] = json.loads(
        frame.to_json(orient="records", date_format="iso", date_unit="us")
    )
    return loaded
