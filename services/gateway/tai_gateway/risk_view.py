"""Pure risk read-outs for the Risk tab and the API: limit usage, VaR/CVaR, drawdown, breakers.

The risk service enforces the limits and announces them (RiskLimitsPublished); the gateway
shows those values and breakers, and how close the account is to each, never a copy of its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from tai_events.risk import BreakerDescription, RiskLimitsPublished
from tai_quant.risk import historical_expected_shortfall, historical_var

WARNING_USAGE_PCT = 80.0
MINIMUM_RETURNS = 20
"""VaR from fewer returns than this is noise: report it as unavailable."""


class LimitStatus(StrEnum):
    """How close a limit is."""

    OK = "OK"
    WARNING = "WARNING"
    BREACHED = "BREACHED"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limit values shown: those risk announced it enforces."""

    max_position_notional_pct: float
    max_open_positions: int
    max_drawdown_pct: float
    max_daily_loss_pct: float
    max_var_pct: float
    var_confidence: float
    cvar_confidence: float
    breakers: tuple[BreakerDescription, ...] = ()

    @classmethod
    def from_published(cls, published: RiskLimitsPublished) -> RiskLimits:
        """Return what risk announced, in the shape the read-outs use."""
        limits = published.limits
        thresholds = {row.setting: row.threshold for row in published.breakers if row.setting}
        return cls(
            max_position_notional_pct=float(limits["max_position_notional_pct"]),
            max_open_positions=int(limits["max_open_positions"]),
            max_drawdown_pct=float(thresholds.get("drawdown_halt_pct") or 0.0),
            max_daily_loss_pct=float(thresholds.get("daily_loss_halt_pct") or 0.0),
            max_var_pct=float(limits["max_var_pct"]),
            var_confidence=float(limits["var_confidence"]),
            cvar_confidence=float(limits["cvar_confidence"]),
            breakers=tuple(published.breakers),
        )


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """One limit: the value now, the limit, and the usage in percent of the limit."""

    name: str
    value: float
    limit: float
    unit: str
    usage_pct: float
    status: LimitStatus


@dataclass(frozen=True, slots=True)
class RiskReport:
    """Everything the Risk tab shows besides the state and the rejections."""

    equity: float | None
    peak_equity: float | None
    drawdown_pct: float
    daily_pnl: float
    var: float | None
    """Historical VaR of one step's equity return, in account currency."""
    cvar: float | None
    """Historical CVaR (expected shortfall) of one step, in account currency."""
    var_confidence: float
    cvar_confidence: float
    limits: tuple[LimitUsage, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return asdict(self)


def _usage(name: str, value: float, limit: float, unit: str) -> LimitUsage:
    usage = 0.0 if limit <= 0 else max(0.0, value) / limit * 100.0
    status = (
        LimitStatus.BREACHED
        if usage >= 100.0
        else LimitStatus.WARNING
        if usage >= WARNING_USAGE_PCT
        else LimitStatus.OK
    )
    return LimitUsage(name, round(value, 6), limit, unit, round(usage, 2), status)


def _daily_pnl(equity: pd.Series, now: datetime) -> float:
    day_start = pd.Timestamp(now).tz_convert("UTC").normalize()
    before = equity[equity.index < day_start]
    opening = float(before.iloc[-1]) if not before.empty else float(equity.iloc[0])
    return float(equity.iloc[-1]) - opening


def risk_report(
    equity_curve: pd.DataFrame, positions: pd.DataFrame, limits: RiskLimits, now: datetime
) -> RiskReport:
    """Compute drawdown, daily P&L, VaR/CVaR and every limit's usage from the ledger."""
    if equity_curve.empty:
        equity_now: float | None = None
        peak: float | None = None
        drawdown = 0.0
        daily = 0.0
        var = cvar = None
    else:
        series = equity_curve.set_index("taken_at")["equity"].astype("float64").sort_index()
        equity_now = float(series.iloc[-1])
        peak = float(series.max())
        drawdown = max(0.0, (peak - equity_now) / peak * 100.0) if peak > 0 else 0.0
        daily = _daily_pnl(series, now)
        returns = series.pct_change().replace([np.inf, -np.inf], np.nan).dropna()
        if returns.size >= MINIMUM_RETURNS:
            var = historical_var(returns, limits.var_confidence) * equity_now
            cvar = historical_expected_shortfall(returns, limits.cvar_confidence) * equity_now
        else:
            var = cvar = None
    open_positions = (
        positions[positions["quantity"].abs() > 1e-12] if not positions.empty else (positions)
    )
    largest_notional_pct = 0.0
    if equity_now and not open_positions.empty:
        notionals = (open_positions["quantity"].abs() * open_positions["last_price"]).astype(float)
        largest_notional_pct = float(notionals.max()) / equity_now * 100.0
    daily_loss_pct = max(0.0, -daily) / equity_now * 100.0 if equity_now else 0.0
    usages = [
        _usage(
            "position notional",
            largest_notional_pct,
            limits.max_position_notional_pct,
            "% of equity",
        ),
        _usage(
            "open positions",
            float(len(open_positions)),
            float(limits.max_open_positions),
            "positions",
        ),
        _usage("drawdown", drawdown, limits.max_drawdown_pct, "%"),
        _usage("daily loss", daily_loss_pct, limits.max_daily_loss_pct, "% of equity"),
    ]
    if var is not None and equity_now:
        usages.append(_usage("VaR", var / equity_now * 100.0, limits.max_var_pct, "% of equity"))
    return RiskReport(
        equity=equity_now,
        peak_equity=peak,
        drawdown_pct=round(drawdown, 6),
        daily_pnl=round(daily, 6),
        var=None if var is None else round(var, 6),
        cvar=None if cvar is None else round(cvar, 6),
        var_confidence=limits.var_confidence,
        cvar_confidence=limits.cvar_confidence,
        limits=tuple(usages),
    )


def circuit_breakers(report: RiskReport, limits: RiskLimits) -> list[dict[str, str]]:
    """Return the breakers risk applies, each with its threshold, the state it moves to, what
    lifts it, and (for the loss breakers) how close the account is."""
    usages = {usage.name: usage for usage in report.limits}
    usage_of = {"daily_loss": "daily loss", "drawdown": "drawdown"}
    rows = []
    for breaker in limits.breakers:
        usage = usages.get(usage_of.get(breaker.breaker, ""))
        tracks = usage is not None and breaker.threshold is not None
        level = 0.0 if usage is None or not breaker.threshold else usage.value / breaker.threshold
        rows.append(
            {
                "breaker": breaker.breaker,
                "condition": breaker.condition,
                "threshold": "" if breaker.threshold is None else f"{breaker.threshold:g}",
                "moves to": breaker.moves_to.value,
                "lifted by": breaker.lifted_by,
                "usage": f"{level * 100.0:.1f}%" if tracks else "",
                "status": "TRIPPED" if tracks and level >= 1.0 else "armed",
            }
        )
    return rows
