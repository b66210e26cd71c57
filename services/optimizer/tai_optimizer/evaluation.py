"""Score one parameter set on one stretch of bars.

Every research loop (walk-forward, Optuna, the daily job) evaluates parameters here, so they
all share one definition of the metrics and of the objective's penalties. ``sma_cross`` runs
on the vectorised engine (the research loops need its speed); every other strategy runs its
live object in the event-driven backtester, primed on the warm-up bars — ml_driven behind the
live inference engine, its models trained for the candidate trade plan on a sliding window
(:func:`tai_optimizer.strategies.build_runner`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tai_events.market import BarClosed, Timeframe
from tai_inference.training import TrainingOptions
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import BacktestConfig, EventDrivenBacktester
from tai_optimizer.backtest.vectorised import run_sma_cross
from tai_optimizer.strategies import RESEARCH_MODEL_OPTIONS, build_runner
from tai_quant.metrics import drawdown_statistics, sharpe_ratio
from tai_strategy.registry import STRATEGY_TYPES
from tai_strategy.search_spaces import ML_TRAINING_BARS

SUPPORTED_STRATEGIES = tuple(STRATEGY_TYPES)
"""Every live strategy: sma_cross vectorised, the others event-driven."""
VECTORISED = "sma_cross"


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
    leverage: float = 1.0
    """Buying power per unit of equity for the event-driven strategies (FX: 30)."""
    symbol: str = "EURUSD"
    timeframe: Timeframe = Timeframe.H1
    """What the frame's bars are (the event-driven strategies see them as bar events)."""
    model_options: TrainingOptions = RESEARCH_MODEL_OPTIONS
    """How ml_driven's research models are trained (their plan is the candidate's)."""
    retrain_every: int = ML_TRAINING_BARS
    """Bars between ml_driven's model retrains (each on the last ``ML_TRAINING_BARS``)."""

    def __post_init__(self) -> None:
        if self.strategy not in SUPPORTED_STRATEGIES:
            raise ValueError(
                f"unknown strategy {self.strategy!r}; supported: {', '.join(SUPPORTED_STRATEGIES)}"
            )
        if not self.cash > 0 or not self.quantity > 0 or not self.periods_per_year > 0:
            raise ValueError("cash, quantity and periods_per_year must be positive")
        if not self.leverage >= 1.0 or self.retrain_every < 1:
            raise ValueError("leverage must be at least 1 and retrain_every positive")


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

    parameters: dict[str, Any]
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
    parameters: Mapping[str, Any],
    settings: EvaluationSettings,
    *,
    warm_up_bars: int = 0,
) -> Evaluation:
    """Backtest ``parameters`` on ``frame``; its first ``warm_up_bars`` only prime indicators.

    No order may fill on a warm-up bar or at the open of the first scored bar: for sma_cross
    ``warm_up_bars`` must not exceed the strategy's own warm-up, so the first signal falls on
    a scored bar and fills one bar later; an event-driven strategy only warms up on them. The
    equity curve and the metrics cover the scored bars only.
    """
    if settings.strategy != VECTORISED:
        return _evaluate_event_driven(frame, parameters, settings, warm_up_bars)
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


def bar_events(frame: pd.DataFrame, symbol: str, timeframe: Timeframe) -> list[BarClosed]:
    """Return the frame's rows (capitalised or lower-case OHLCV) as bar events."""
    columns = {name.lower(): name for name in frame.columns}
    opens, highs, lows, closes = (
        frame[columns[name]].to_numpy(np.float64) for name in ("open", "high", "low", "close")
    )
    volumes = (
        frame[columns["volume"]].to_numpy(np.float64)
        if "volume" in columns
        else np.zeros(len(frame))
    )
    duration = timeframe.duration
    return [
        BarClosed(
            symbol=symbol,
            timeframe=timeframe,
            opened_at=opened,
            closed_at=opened + duration,
            open=float(opens[row]),
            high=float(highs[row]),
            low=float(lows[row]),
            close=float(closes[row]),
            volume=float(volumes[row]),
            source="research",
        )
        for row, opened in enumerate(pd.DatetimeIndex(frame.index).to_pydatetime())
    ]


def _evaluate_event_driven(
    frame: pd.DataFrame,
    parameters: Mapping[str, Any],
    settings: EvaluationSettings,
    warm_up_bars: int,
) -> Evaluation:
    if not 0 <= warm_up_bars < len(frame) - 1:
        raise ValueError("an evaluation needs at least two scored bars after its warm-up")
    values = dict(parameters)
    kind = STRATEGY_TYPES[settings.strategy]
    if "capital" in kind.parameters_type.model_fields:
        values.setdefault("capital", settings.cash)  # risk is a share of this account
    runner = build_runner(
        settings.strategy,
        values,
        model_options=settings.model_options,
        retrain_every=settings.retrain_every,
    )
    bars = bar_events(frame, settings.symbol, settings.timeframe)
    for bar in bars[:warm_up_bars]:
        runner.warm_up(bar)
    result = EventDrivenBacktester(
        runner,
        BacktestConfig(cash=settings.cash, costs=settings.costs, leverage=settings.leverage),
    ).run(bars[warm_up_bars:])
    return _evaluation(
        dict(parameters),
        result.equity,
        [trade.pnl for trade in result.trades],
        settings.periods_per_year,
    )


def _evaluation(
    parameters: dict[str, Any], equity: pd.Series, pnls: list[float], periods_per_year: float
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
