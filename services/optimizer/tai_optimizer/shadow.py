"""Shadow trading: a candidate's parameters paper-traded beside production, never routed.

A shadow strategy is the live strategy object, primed on the history before its period and
run on the very bars production traded, with the live risk engine and the paper broker
*in this process* (the event-driven backtester). Its orders are simulated, never published
as ``order.requested``, so nothing it decides can reach a broker. Production is replayed the
same way over the same bars, so the comparison is like for like.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tai_events.market import BarClosed
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import BacktestConfig, BacktestResult, EventDrivenBacktester
from tai_quant.metrics import drawdown_statistics, sharpe_ratio
from tai_strategy.sma_cross import SmaCrossParameters, SmaCrossStrategy


@dataclass(frozen=True)
class ShadowPolicy:
    """When a shadowed candidate beats production."""

    min_sharpe_improvement: float = 0.0
    """The candidate's Sharpe must exceed production's by more than this."""
    max_extra_drawdown_pct: float = 2.0
    """...and its drawdown may exceed production's by at most this many points."""


@dataclass(frozen=True)
class ShadowVerdict:
    """The comparison of one shadow period."""

    candidate: dict[str, Any]
    production: dict[str, Any]
    score_difference: float
    candidate_better: bool
    reason: str
    bars: int


def run_shadow(
    parameters: Mapping[str, Any],
    history: Sequence[BarClosed],
    bars: Sequence[BarClosed],
    *,
    cash: float,
    costs: CostModel,
) -> BacktestResult:
    """Prime sma_cross on ``history``, then paper-trade ``bars`` in-process; return the run."""
    strategy = SmaCrossStrategy(SmaCrossParameters.model_validate(dict(parameters)))
    for bar in history:
        strategy.warm_up(bar)
    return EventDrivenBacktester(strategy, BacktestConfig(cash=cash, costs=costs)).run(bars)


def shadow_metrics(result: BacktestResult, periods_per_year: float) -> dict[str, Any]:
    """Return the headline numbers of a shadow (or production replay) run."""
    equity = result.equity
    sharpe = (
        sharpe_ratio(equity.pct_change().iloc[1:], periods_per_year) if len(equity) > 2 else None
    )
    return {
        "final_equity": result.final_equity,
        "return_pct": (result.final_equity / result.initial_cash - 1.0) * 100.0,
        "sharpe": sharpe if sharpe is not None and math.isfinite(sharpe) else 0.0,
        "max_drawdown_pct": (
            drawdown_statistics(equity).max_drawdown_pct if len(equity) > 1 else 0.0
        ),
        "trades": len(result.trades),
        "fills": len(result.fills),
        "bars": result.bar_count,
    }


def compare(
    candidate: dict[str, Any], production: dict[str, Any], policy: ShadowPolicy, bars: int
) -> ShadowVerdict:
    """Return whether the candidate beat production over the shadow period, and why."""
    difference = float(candidate["sharpe"]) - float(production["sharpe"])
    extra_drawdown = float(candidate["max_drawdown_pct"]) - float(production["max_drawdown_pct"])
    if difference <= policy.min_sharpe_improvement:
        better, reason = (
            False,
            (
                f"shadow Sharpe {candidate['sharpe']:.3f} does not beat production "
                f"{production['sharpe']:.3f} by more than {policy.min_sharpe_improvement}"
            ),
        )
    elif extra_drawdown > policy.max_extra_drawdown_pct:
        better, reason = (
            False,
            (
                f"shadow drawdown {candidate['max_drawdown_pct']:.2f}% exceeds production "
                f"{production['max_drawdown_pct']:.2f}% by more than "
                f"{policy.max_extra_drawdown_pct}"
            ),
        )
    else:
        better, reason = (
            True,
            (
                f"shadow Sharpe {candidate['sharpe']:.3f} beats production "
                f"{production['sharpe']:.3f}; drawdown {candidate['max_drawdown_pct']:.2f}% vs "
                f"{production['max_drawdown_pct']:.2f}%"
            ),
        )
    return ShadowVerdict(candidate, production, difference, better, reason, bars)
