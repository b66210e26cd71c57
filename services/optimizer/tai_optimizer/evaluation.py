"""Score one parameter set on one stretch of bars with the vectorised engine.

Every research loop (walk-forward, Optuna, the daily job) evaluates parameters here, so they
all share one definition of the metrics and of the objective's penalties.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.vectorised import run_sma_cross
from tai_quant.metrics import drawdown_statistics, sharpe_ratio

SUPPORTED_STRATEGIES = ("sma_cross",)
"""Strategies with a vectorised engine (the research loops need its speed)."""


class LookaheadError(RuntimeError):
    """An evaluation traded on bars it was only allowed to use for indicator warm-up."""


@dataclass(frozen=True)
class EvaluationSettings:
    """How parameters are traded and annualised during research."""

    strategy: str = "sma_cross"
    cash: float = 100_000.0
    quantity: float = 10_000.0
    costs: CostModel = field(default_factory=CostModel)
    periods_per_year: float = 6240.0
    """Bars per year (hourly FX: 24 x 260); infer it once from the whole data set."""

    def __post_init__(self) -> None:
        if self.strategy not in SUPPORTED_STRATEGIES:
            raise ValueError(
                f"strategy {self.strategy!r} has no vectorised engine; "
                f"supported: {', '.join(SUPPORTED_STRATEGIES)}"
            )
        if not self.cash > 0 or not self.quantity > 0 or not self.periods_per_year > 0:
            raise ValueError("cash, quantity and periods_per_year must be positive")


@dataclass(frozen=True)
class ObjectiveSettings:
    """The optimisation target: Sharpe, penalised for too few trades and for deep drawdowns."""

    min_trades: int = 5
    too_few_trades_penalty: float = 1.0
    """Subtracted in full with no trade at all, pro rata below ``min_trades``."""
    max_drawdown_pct: float = 20.0
    drawdown_penalty: float = 1.0
    """Subtracted per ``max_drawdown_pct`` of drawdown beyond ``max_drawdown_pct``."""


@dataclass(frozen=True)
class Evaluation:
    """The result of one parameter set on one stretch of bars."""

    parameters: dict[str, int]
    equity: pd.Series
    trade_pnls: tuple[float, ...]
    sharpe: float
    """Annualised; 0 when the returns have no spread (e.g. no trade)."""
    total_return_pct: float
    max_drawdown_pct: float
    periods_per_year: float

    @property
    def trades(self) -> int:
        """Return the number of closed trades."""
        return len(self.trade_pnls)

    @property
    def bars(self) -> int:
        """Return the number of bars the equity covers."""
        return len(self.equity)

    @property
    def returns(self) -> pd.Series:
        """Return the per-bar simple returns."""
        return self.equity.pct_change().iloc[1:]

    @property
    def log_return_per_bar(self) -> float:
        """Return the mean log return per bar (comparable across window lengths)."""
        if self.bars < 2:
            return 0.0
        ratio = float(self.equity.iloc[-1]) / float(self.equity.iloc[0])
        return math.log(ratio) / (self.bars - 1) if ratio > 0 else -math.inf

    def summary(self) -> dict[str, object]:
        """Return the JSON-ready headline numbers."""
        return {
            "parameters": self.parameters,
            "bars": self.bars,
            "start": self.equity.index[0].isoformat() if self.bars else None,
            "end": self.equity.index[-1].isoformat() if self.bars else None,
            "sharpe": self.sharpe,
            "total_return_pct": self.total_return_pct,
            "max_drawdown_pct": self.max_drawdown_pct,
            "trades": self.trades,
            "final_equity": float(self.equity.iloc[-1]) if self.bars else None,
        }


def evaluate(
    frame: pd.DataFrame,
    parameters: Mapping[str, int],
    settings: EvaluationSettings,
    *,
    warm_up_bars: int = 0,
) -> Evaluation:
    """Backtest ``parameters`` on ``frame``; its first ``warm_up_bars`` only prime indicators.

    No order may fill on a warm-up bar or at the open of the first scored bar: ``warm_up_bars``
    must not exceed the strategy's own warm-up, so the first signal falls on a scored bar and
    fills one bar later. The equity curve and the metrics cover the scored bars only.
    """
    fast, slow = int(parameters["fast"]), int(parameters["slow"])
    if not 0 <= warm_up_bars <= slow:
        raise ValueError(f"warm_up_bars must be within 0..slow ({slow}), not {warm_up_bars}")
    if len(frame) - warm_up_bars < 2:
        raise ValueError("an evaluation needs at least two scored bars")
    result = run_sma_cross(
        frame,
        fast=fast,
        slow=slow,
        quantity=settings.quantity,
        cash=settings.cash,
        costs=settings.costs,
    )
    if result.fill_bars.size and int(result.fill_bars.min()) <= warm_up_bars:
        raise LookaheadError(
            f"a fill at bar {int(result.fill_bars.min())} is not after warm-up ({warm_up_bars})"
        )
    equity = result.equity.iloc[warm_up_bars:]
    return _evaluation(
        {"fast": fast, "slow": slow},
        equity,
        [trade.pnl for trade in result.trades],
        settings.periods_per_year,
    )


def _evaluation(
    parameters: dict[str, int], equity: pd.Series, pnls: list[float], periods_per_year: float
) -> Evaluation:
    values = equity.to_numpy(dtype=np.float64)
    if np.all(values > 0):
        sharpe = sharpe_ratio(equity.pct_change().iloc[1:], periods_per_year) or 0.0
        drawdown = drawdown_statistics(equity).max_drawdown_pct
    else:
        sharpe, drawdown = -math.inf, 100.0  # ruined: the worst score, never a candidate
    return Evaluation(
        parameters=parameters,
        equity=equity,
        trade_pnls=tuple(pnls),
        sharpe=float(sharpe),
        total_return_pct=(float(values[-1]) / float(values[0]) - 1.0) * 100.0,
        max_drawdown_pct=float(drawdown),
        periods_per_year=periods_per_year,
    )


def penalised_score(evaluation: Evaluation, objective: ObjectiveSettings) -> float:
    """Return the Sharpe minus the penalties for too few trades and excess drawdown."""
    score = evaluation.sharpe
    if not math.isfinite(score):
        return -1e9
    if objective.min_trades > 0 and evaluation.trades < objective.min_trades:
        shortfall = (objective.min_trades - evaluation.trades) / objective.min_trades
        score -= objective.too_few_trades_penalty * shortfall
    excess = evaluation.max_drawdown_pct - objective.max_drawdown_pct
    if excess > 0 and objective.max_drawdown_pct > 0:
        score -= objective.drawdown_penalty * excess / objective.max_drawdown_pct
    return float(score)


def chain_equity(evaluations: list[Evaluation], cash: float) -> pd.Series:
    """Return one equity curve compounding the evaluations' returns one after the other."""
    pieces: list[pd.Series] = []
    level = cash
    for evaluation in evaluations:
        curve = evaluation.equity / float(evaluation.equity.iloc[0]) * level
        pieces.append(curve)
        level = float(curve.iloc[-1])
    if not pieces:
        return pd.Series(dtype=np.float64, name="equity")
    stitched = pd.concat(pieces)
    unique: pd.Series = stitched[~stitched.index.duplicated(keep="last")]
    return unique.rename("equity")
