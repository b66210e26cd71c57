"""Each strategy's realised P&L beside its latest reported state, for the API and the console."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tai_events.base import ScalarValue
from tai_events.strategies import StrategyParametersUpdated


class StrategySummary(BaseModel):
    """One strategy: whether it runs, its parameters, and what it has traded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str
    enabled: bool | None = Field(description="None until the strategy has reported its state")
    parameters: dict[str, ScalarValue] = Field(description="Latest parameters it reported")
    orders: int = Field(ge=0, description="Orders it has requested")
    trades: int = Field(ge=0, description="Closed trades")
    net_pnl: float = Field(description="Realised P&L after commission")
    win_rate_pct: float | None = Field(description="Share of winning closed trades, in percent")


def strategy_summaries(
    pnl: pd.DataFrame, updates: Iterable[StrategyParametersUpdated]
) -> list[StrategySummary]:
    """Join the ledger's per-strategy P&L with the latest updates seen on the bus, by name."""
    latest = {update.strategy: update for update in updates}
    stats = {str(row["strategy"]): row for row in pnl.to_dict("records")}
    summaries = []
    for name in sorted(set(stats) | set(latest)):
        update = latest.get(name)
        row = stats.get(name, {})
        win_rate = row.get("win_rate_pct")
        summaries.append(
            StrategySummary(
                strategy=name,
                enabled=None if update is None else update.enabled,
                parameters={} if update is None else dict(update.parameters),
                orders=int(row.get("orders", 0)),
                trades=int(row.get("trades", 0)),
                net_pnl=float(row.get("net_pnl", 0.0)),
                win_rate_pct=None if win_rate is None or pd.isna(win_rate) else float(win_rate),
            )
        )
    return summaries
