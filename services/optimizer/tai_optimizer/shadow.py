"""Shadow trading: a candidate (parameters or a model) paper-traded beside production.

A shadow strategy is the live strategy object, primed on the history before its period and
run on the very bars production traded, with the live risk engine and the paper broker
*in this process* (the event-driven backtester). Its orders are simulated, never published
as ``order.requested``, so nothing it decides can reach a broker. Production is replayed the
same way over the same bars, so the comparison is like for like. Any strategy can shadow; a
challenger *model* shadows as ml_driven trading its predictions (the live inference engine
in front), beside ml_driven trading the champion's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tai_events.market import BarClosed
from tai_inference.model import ServingModel
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import BacktestConfig, BacktestResult, EventDrivenBacktester
from tai_optimizer.backtest.retraining import PredictingStrategy
from tai_optimizer.strategies import build_runner
from tai_quant.metrics import drawdown_statistics, sharpe_ratio
from tai_strategy.base import Strategy
from tai_strategy.ml_driven import MlDrivenParameters, MlDrivenStrategy
from tai_strategy.registry import strategy_type


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
    strategy: str = "sma_cross",
    leverage: float = 1.0,
) -> BacktestResult:
    """Prime the strategy on ``history``, then paper-trade ``bars`` in-process; return the run."""
    values = dict(parameters)
    if "capital" in strategy_type(strategy).parameters_type.model_fields:
        values.setdefault("capital", cash)
    return _replay(build_runner(strategy, values), history, bars, cash, costs, leverage)


def run_model_shadow(
    model: ServingModel,
    symbol: str,
    history: Sequence[BarClosed],
    bars: Sequence[BarClosed],
    *,
    cash: float,
    costs: CostModel,
    leverage: float = 1.0,
    parameters: Mapping[str, Any] | None = None,
) -> BacktestResult:
    """Paper-trade ml_driven on one model's predictions over ``bars`` (primed on ``history``)."""
    values = dict(parameters or {})
    if "capital" in MlDrivenParameters.model_fields:
        values.setdefault("capital", cash)
    strategy = MlDrivenStrategy(MlDrivenParameters.model_validate(values))
    runner = PredictingStrategy(strategy, models={symbol: model})
    return _replay(runner, history, bars, cash, costs, leverage)


def _replay(
    runner: Strategy,
    history: Sequence[BarClosed],
    bars: Sequence[BarClosed],
    cash: float,
    costs: CostModel,
    leverage: float,
) -> BacktestResult:
    for bar in history:
        runner.warm_up(bar)
    config = BacktestConfig(cash=cash, costs=costs, leverage=leverage)
    return EventDrivenBacktester(runner, config).run(bars)


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
