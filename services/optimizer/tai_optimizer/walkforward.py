"""Walk-forward optimisation: choose parameters in-sample, trade them out-of-sample, repeat.

Windows roll (fixed-length training) or are anchored (training grows from the first bar).
Each window's parameters are chosen by a selector that receives *only* the training bars;
the test bars start ``gap_bars`` after the training ends. The out-of-sample run may prime its
indicators on bars of the gap (never of the training set) and never trades on them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import optuna
import pandas as pd

from tai_optimizer.evaluation import (
    Evaluation,
    EvaluationSettings,
    ObjectiveSettings,
    chain_equity,
    evaluate,
    penalised_score,
)
from tai_quant.metrics import drawdown_statistics, sharpe_ratio
from tai_strategy.search_spaces import IntegerDimension, SearchSpace


@dataclass(frozen=True)
class WalkForwardConfig:
    """Window geometry in bars (defaults: hourly, 30 days train, one week test and step)."""

    train_bars: int = 720
    test_bars: int = 168
    step_bars: int = 168
    gap_bars: int = 24
    """Bars between a training set and its test set that neither uses for scoring."""
    anchored: bool = False
    warm_up_from_gap: bool = True
    """Let the test run prime indicators on the gap's bars (at most the strategy's warm-up)."""

    def __post_init__(self) -> None:
        if min(self.train_bars, self.test_bars, self.step_bars) < 2 or self.gap_bars < 0:
            raise ValueError("train, test and step need at least two bars; gap must be >= 0")
        if self.step_bars < self.test_bars:
            # Overlapping test windows would count the same out-of-sample bars twice.
            raise ValueError("step_bars must be at least test_bars")


@dataclass(frozen=True, slots=True)
class Window:
    """Positions (end exclusive) of one window's training and test bars."""

    index: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int


def plan_windows(bar_count: int, config: WalkForwardConfig) -> list[Window]:
    """Return every complete window that fits in ``bar_count`` bars."""
    windows: list[Window] = []
    index = 0
    while True:
        offset = index * config.step_bars
        train_start = 0 if config.anchored else offset
        train_end = config.train_bars + offset
        test_start = train_end + config.gap_bars
        test_end = test_start + config.test_bars
        if test_end > bar_count:
            return windows
        windows.append(Window(index, train_start, train_end, test_start, test_end))
        index += 1


@dataclass(frozen=True)
class Selection:
    """The parameters a selector chose on a training set, and how many it tried."""

    parameters: dict[str, Any]
    score: float
    trials: int
    scores: tuple[tuple[dict[str, Any], float], ...] = ()


class Selector(Protocol):
    """Choose parameters using the training bars only."""

    def __call__(self, train: pd.DataFrame) -> Selection:
        """Return the selection for this training set."""
        ...


@dataclass(frozen=True)
class GridSelector:
    """Exhaustive search over the space's grid (small spaces)."""

    space: SearchSpace
    settings: EvaluationSettings
    objective: ObjectiveSettings = field(default_factory=ObjectiveSettings)

    def __call__(self, train: pd.DataFrame) -> Selection:
        """Score every valid combination on the training bars; keep the best."""
        scored: list[tuple[dict[str, Any], float]] = []
        for parameters in self.space.grid():
            if self.space.warm_up(parameters) >= len(train) - 1:
                continue
            evaluation = evaluate(train, parameters, self.settings)
            scored.append((parameters, penalised_score(evaluation, self.objective)))
        if not scored:
            raise ValueError("no parameter combination fits in the training window")
        best = max(scored, key=lambda item: item[1])
        return Selection(dict(best[0]), best[1], len(scored), tuple(scored))


@dataclass(frozen=True)
class TpeSelector:
    """Seeded Optuna TPE search on the training bars (in memory, one study per window)."""

    space: SearchSpace
    settings: EvaluationSettings
    objective: ObjectiveSettings = field(default_factory=ObjectiveSettings)
    trials: int = 40
    seed: int = 7

    def __call__(self, train: pd.DataFrame) -> Selection:
        """Run ``trials`` TPE trials and return the best parameters."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=self.seed)
        )
        space = self.space
        limit = len(train) - 2

        def objective(trial: optuna.Trial) -> float:
            parameters = suggest(trial, space)
            if not space.is_valid(parameters) or space.warm_up(parameters) > limit:
                raise optuna.TrialPruned("invalid combination")
            return penalised_score(evaluate(train, parameters, self.settings), self.objective)

        study.optimize(objective, n_trials=self.trials)
        completed = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        if not completed:
            raise ValueError("no valid trial in the training window")
        best = study.best_trial
        scores = tuple((dict(trial.params), float(trial.value or 0.0)) for trial in completed)
        return Selection(
            dict(best.params),
            float(best.value or 0.0),
            len(completed),
            scores,
        )


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Ask the trial for a value of every dimension of the space (ints stay ints)."""
    values: dict[str, Any] = {}
    for dimension in space.dimensions:
        if isinstance(dimension, IntegerDimension):
            values[dimension.name] = trial.suggest_int(
                dimension.name, dimension.low, dimension.high, step=dimension.step
            )
        else:
            values[dimension.name] = trial.suggest_float(
                dimension.name, dimension.low, dimension.high, step=dimension.step
            )
    return values


@dataclass(frozen=True)
class WindowResult:
    """One window: the chosen parameters, in-sample and out-of-sample results."""

    window: Window
    parameters: dict[str, Any]
    in_sample: Evaluation
    out_of_sample: Evaluation
    trials: int
    warm_up_bars: int
    seconds: float
    train_range: tuple[pd.Timestamp, pd.Timestamp]
    test_range: tuple[pd.Timestamp, pd.Timestamp]


@dataclass(frozen=True)
class WalkForwardResult:
    """All windows, the stitched out-of-sample equity and the robustness summaries."""

    config: WalkForwardConfig
    settings: EvaluationSettings
    windows: list[WindowResult]
    stitched_equity: pd.Series

    def efficiency(self) -> float | None:
        """Return walk-forward efficiency: mean OOS log return per bar over mean IS.

        Above ~0.5 the in-sample edge mostly survives out of sample; None when the
        in-sample return is not positive (the ratio would be meaningless).
        """
        in_sample = float(np.mean([item.in_sample.log_return_per_bar for item in self.windows]))
        out_of_sample = float(
            np.mean([item.out_of_sample.log_return_per_bar for item in self.windows])
        )
        if not in_sample > 0 or not math.isfinite(out_of_sample):
            return None
        return out_of_sample / in_sample

    def sharpe_efficiency(self) -> float | None:
        """Return the mean OOS Sharpe over the mean IS Sharpe (None if IS is not positive)."""
        in_sample = float(np.mean([item.in_sample.sharpe for item in self.windows]))
        out_of_sample = float(np.mean([item.out_of_sample.sharpe for item in self.windows]))
        return out_of_sample / in_sample if in_sample > 0 else None

    def parameter_stability(self) -> dict[str, dict[str, float]]:
        """Return, per parameter: mean, std, min, max, coefficient of variation, change share."""
        stability: dict[str, dict[str, float]] = {}
        names = self.windows[0].parameters.keys() if self.windows else []
        for name in names:
            values = np.array([item.parameters[name] for item in self.windows], dtype=np.float64)
            changes = int(np.count_nonzero(np.diff(values))) if values.size > 1 else 0
            _, counts = np.unique(values, return_counts=True)
            mean = float(values.mean())
            std = float(values.std(ddof=1)) if values.size > 1 else 0.0
            stability[name] = {
                "mean": mean,
                "std": std,
                "min": float(values.min()),
                "max": float(values.max()),
                "coefficient_of_variation": std / mean if mean else 0.0,
                "change_share": changes / max(1, values.size - 1),
                "mode_share": float(counts.max() / values.size),
            }
        return stability

    def summary(self) -> dict[str, Any]:
        """Return the JSON-ready report."""
        stitched = self.stitched_equity
        oos_sharpe = (
            sharpe_ratio(stitched.pct_change().iloc[1:], self.settings.periods_per_year)
            if len(stitched) > 2
            else None
        )
        return {
            "config": {
                "train_bars": self.config.train_bars,
                "test_bars": self.config.test_bars,
                "step_bars": self.config.step_bars,
                "gap_bars": self.config.gap_bars,
                "anchored": self.config.anchored,
                "warm_up_from_gap": self.config.warm_up_from_gap,
            },
            "strategy": self.settings.strategy,
            "windows": [_window_summary(item) for item in self.windows],
            "in_sample": {
                "mean_sharpe": _mean([item.in_sample.sharpe for item in self.windows]),
                "mean_return_pct": _mean(
                    [item.in_sample.total_return_pct for item in self.windows]
                ),
                "trades": sum(item.in_sample.trades for item in self.windows),
            },
            "out_of_sample": {
                "mean_sharpe": _mean([item.out_of_sample.sharpe for item in self.windows]),
                "mean_return_pct": _mean(
                    [item.out_of_sample.total_return_pct for item in self.windows]
                ),
                "trades": sum(item.out_of_sample.trades for item in self.windows),
                "stitched_sharpe": oos_sharpe,
                "stitched_return_pct": (
                    (float(stitched.iloc[-1]) / float(stitched.iloc[0]) - 1.0) * 100.0
                    if len(stitched)
                    else None
                ),
                "stitched_max_drawdown_pct": (
                    drawdown_statistics(stitched).max_drawdown_pct if len(stitched) > 1 else None
                ),
            },
            "walk_forward_efficiency": self.efficiency(),
            "sharpe_efficiency": self.sharpe_efficiency(),
            "parameter_stability": self.parameter_stability(),
            "stitched_equity": {
                "times": [moment.isoformat() for moment in stitched.index],
                "values": [float(value) for value in stitched.to_numpy()],
            },
        }


def _mean(values: list[float]) -> float | None:
    finite = [value for value in values if math.isfinite(value)]
    return float(np.mean(finite)) if finite else None


def _window_summary(item: WindowResult) -> dict[str, Any]:
    return {
        "index": item.window.index,
        "train": [item.train_range[0].isoformat(), item.train_range[1].isoformat()],
        "test": [item.test_range[0].isoformat(), item.test_range[1].isoformat()],
        "parameters": item.parameters,
        "trials": item.trials,
        "warm_up_bars": item.warm_up_bars,
        "in_sample": item.in_sample.summary(),
        "out_of_sample": item.out_of_sample.summary(),
        "seconds": item.seconds,
    }


ProgressCallback = Callable[[int, int], None]


def run_walk_forward(
    frame: pd.DataFrame,
    *,
    space: SearchSpace,
    selector: Selector,
    config: WalkForwardConfig,
    settings: EvaluationSettings,
    progress: ProgressCallback | None = None,
) -> WalkForwardResult:
    """Optimise on each training window, evaluate out of sample, stitch the test equity."""
    windows = plan_windows(len(frame), config)
    if not windows:
        raise ValueError(
            f"{len(frame)} bars hold no complete window of train {config.train_bars} + gap "
            f"{config.gap_bars} + test {config.test_bars}"
        )
    results: list[WindowResult] = []
    for position, window in enumerate(windows, start=1):
        started = time.perf_counter()
        train = frame.iloc[window.train_start : window.train_end]
        selection = selector(train)
        parameters = selection.parameters
        in_sample = evaluate(train, parameters, settings)
        warm_up = min(space.warm_up(parameters), config.gap_bars) if config.warm_up_from_gap else 0
        test = frame.iloc[window.test_start - warm_up : window.test_end]
        out_of_sample = evaluate(test, parameters, settings, warm_up_bars=warm_up)
        results.append(
            WindowResult(
                window=window,
                parameters=parameters,
                in_sample=in_sample,
                out_of_sample=out_of_sample,
                trials=selection.trials,
                warm_up_bars=warm_up,
                seconds=time.perf_counter() - started,
                train_range=(train.index[0], train.index[-1]),
                test_range=(
                    frame.index[window.test_start],
                    frame.index[window.test_end - 1],
                ),
            )
        )
        if progress is not None:
            progress(position, len(windows))
    stitched = chain_equity([item.out_of_sample for item in results], settings.cash)
    return WalkForwardResult(config, settings, results, stitched)
