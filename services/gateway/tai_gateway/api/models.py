"""Request and response bodies of the API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tai_events.base import Name, ScalarValue, Symbol
from tai_events.risk import TradingState
from tai_gateway.auth import Role
from tai_gateway.backtests import BacktestRun
from tai_gateway.risk_view import RiskReport


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


class Record(BaseModel):
    """A response body: immutable, and exactly the documented fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Health(Record):
    """The process is alive."""

    status: Literal["ok"] = "ok"


class Readiness(Record):
    """Whether the gateway can serve: each check by name (store, bus)."""

    ready: bool
    checks: dict[str, bool]


class RejectionRecord(Record):
    """An order risk (or a broker) rejected, with the reason."""

    order_id: str
    strategy: str
    symbol: str
    side: str
    requested_quantity: float
    reason: str
    updated_at: datetime


class RiskStateView(Record):
    """The trading state: as last seen on the bus (live), else as stored, else none yet."""

    source: Literal["live", "store", "none"]
    state: TradingState | None
    previous_state: TradingState | None = None
    reason: str | None = None
    changed_by: str | None = None
    changed_at: datetime | None = None
    equity: float | None = Field(default=None, description="Only from a live snapshot")
    peak_equity: float | None = Field(default=None, description="Only from a live snapshot")
    drawdown_pct: float | None = Field(default=None, description="Only from a live snapshot")
    daily_pnl: float | None = Field(default=None, description="Only from a live snapshot")


class BreakerView(Record):
    """A circuit breaker as risk applies it: its threshold, the state it moves trading to, what
    lifts that state, and whether it has tripped."""

    breaker: str
    condition: str
    threshold: str
    moves_to: TradingState
    lifted_by: str
    usage: str
    status: Literal["armed", "TRIPPED"]


@dataclass(frozen=True, slots=True)
class RiskLimitsView(RiskReport):
    """Each limit's usage, VaR/CVaR, drawdown and the circuit breakers."""

    circuit_breakers: tuple[BreakerView, ...] = ()


class ModelRecord(Record):
    """A registered model (its artifact is never served)."""

    model_id: str
    name: str
    algorithm: str | None = None
    symbol: str
    timeframe: str
    stage: str
    feature_set_version: str | None = None
    metrics: dict[str, Any] | None = None
    importances: dict[str, Any] | None = None
    extras: dict[str, Any] | None = None
    artifact_sha256: str | None = None
    created_at: datetime | None = None
    promoted_at: datetime | None = None
    needs_retraining: bool | None = None
    retraining_reason: str | None = None


class ModelRegistryView(Record):
    """The model registry: absent until the optimizer trained a model."""

    registry: bool
    models: list[ModelRecord]


@dataclass(frozen=True, slots=True)
class BacktestRunDetail(BacktestRun):
    """A run and, once it succeeded, its full report."""

    report: dict[str, Any] | None = None
