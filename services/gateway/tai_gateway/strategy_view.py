"""Each strategy's realised P&L beside its latest reported state, for the API and the console."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
    approved_full: int = Field(ge=0, description="Approved at the strategy's own size")
    approved_reduced: int = Field(ge=0, description="Approved after a risk limit cut the size")
    rejected: int = Field(ge=0, description="Refused by risk (or the broker)")
    rejections_by_rule: dict[str, int] = Field(description="Refusals by the rule that refused")
    filled: int = Field(ge=0, description="Requested orders that filled")
    trades: int = Field(ge=0, description="Closed trades")
    net_pnl: float = Field(description="Realised P&L after commission")
    win_rate_pct: float | None = Field(description="Share of winning closed trades, in percent")


def strategy_summaries(
    summary: pd.DataFrame, updates: Iterable[StrategyParametersUpdated]
) -> list[StrategySummary]:
    """Join the ledger's per-strategy outcome (tai_store.queries.strategy_summary) with the
    latest state each strategy announced on the bus, by name."""
    latest = {update.strategy: update for update in updates}
    stats: dict[str, dict[str, Any]] = {
        str(row["strategy"]): {str(key): value for key, value in row.items()}
        for row in summary.to_dict("records")
    }
    summaries = []
    for name in sorted(set(stats) | set(latest)):
        update = latest.get(name)
        row = stats.get(name, {})
        trades = int(row.get("trades", 0))
        summaries.append(
            StrategySummary(
                strategy=name,
                enabled=None if update is None else update.enabled,
                parameters={} if update is None else dict(update.parameters),
                orders=int(row.get("requests", 0)),
                approved_full=int(row.get("approved_full", 0)),
                approved_reduced=int(row.get("approved_reduced", 0)),
                rejected=int(row.get("rejected", 0)),
                rejections_by_rule=dict(row.get("rejections_by_rule", {})),
                filled=int(row.get("filled_orders", 0)),
                trades=trades,
                net_pnl=round(float(row.get("net_pnl", 0.0)), 2),
                win_rate_pct=(
                    round(int(row.get("winning_trades", 0)) / trades * 100.0, 1) if trades else None
                ),
            )
        )
    return summaries
