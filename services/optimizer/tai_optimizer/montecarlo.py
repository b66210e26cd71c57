"""Monte Carlo robustness: how lucky was the backtest's order of trades and returns?

* Trades, reshuffle: the same trades in random orders (final equity fixed, drawdown varies).
* Trades, bootstrap: trades drawn with replacement (final equity and drawdown vary).
* Returns, bootstrap: per-bar returns drawn in blocks with replacement, compounded.

Each run reports the distributions of final equity and maximum drawdown, the probability of
ruin (equity ever at or below the ruin level) and 5 % / 50 % / 95 % bands for a fan chart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

PERCENTILES = (5.0, 50.0, 95.0)


class MonteCarloMethod(StrEnum):
    """What is resampled."""

    TRADE_RESHUFFLE = "reshuffle"
    TRADE_BOOTSTRAP = "bootstrap"
    RETURN_BOOTSTRAP = "returns"


@dataclass(frozen=True)
class MonteCarloResult:
    """Distributions over the simulated paths."""

    method: MonteCarloMethod
    simulations: int
    initial_equity: float
    ruin_level: float
    final_equity: FloatArray
    max_drawdown_pct: FloatArray
    ruined: npt.NDArray[np.bool_]
    bands: FloatArray
    """Shape (3, steps + 1): the 5th, 50th and 95th percentile equity at each step."""

    @property
    def probability_of_ruin(self) -> float:
        """Return the share of paths that touched the ruin level."""
        return float(np.mean(self.ruined))

    def final_equity_percentiles(self) -> dict[str, float]:
        """Return the 5th, 50th and 95th percentiles of final equity."""
        return _percentiles(self.final_equity)

    def max_drawdown_percentiles(self) -> dict[str, float]:
        """Return the 5th, 50th and 95th percentiles of maximum drawdown (positive %)."""
        return _percentiles(self.max_drawdown_pct)

    def summary(self) -> dict[str, Any]:
        """Return the JSON-ready report (bands included for the fan chart)."""
        return {
            "method": self.method.value,
            "simulations": self.simulations,
            "initial_equity": self.initial_equity,
            "ruin_level": self.ruin_level,
            "probability_of_ruin": self.probability_of_ruin,
            "final_equity": {
                **self.final_equity_percentiles(),
                "mean": float(np.mean(self.final_equity)),
            },
            "max_drawdown_pct": {
                **self.max_drawdown_percentiles(),
                "mean": float(np.mean(self.max_drawdown_pct)),
            },
            "bands": {
                f"p{int(level)}": [float(value) for value in row]
                for level, row in zip(PERCENTILES, self.bands, strict=True)
            },
        }


def _percentiles(values: FloatArray) -> dict[str, float]:
    points = np.percentile(values, PERCENTILES)
    return {
        f"p{int(level)}": float(point) for level, point in zip(PERCENTILES, points, strict=True)
    }


def _validate(simulations: int, initial_equity: float, ruin_loss_pct: float) -> None:
    if simulations < 1:
        raise ValueError("simulations must be at least 1")
    if not initial_equity > 0:
        raise ValueError("initial_equity must be positive")
    if not 0 < ruin_loss_pct <= 100:
        raise ValueError("ruin_loss_pct must be within (0, 100]")


def _result(
    method: MonteCarloMethod, paths: FloatArray, initial_equity: float, ruin_loss_pct: float
) -> MonteCarloResult:
    ruin_level = initial_equity * (1 - ruin_loss_pct / 100.0)
    peaks = np.maximum.accumulate(paths, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdowns = np.where(peaks > 0, 1.0 - paths / peaks, 1.0)
    return MonteCarloResult(
        method=method,
        simulations=paths.shape[0],
        initial_equity=initial_equity,
        ruin_level=ruin_level,
        final_equity=paths[:, -1].copy(),
        max_drawdown_pct=np.minimum(drawdowns.max(axis=1), 1.0) * 100.0,
        ruined=np.asarray((paths <= ruin_level).any(axis=1), dtype=np.bool_),
        bands=np.percentile(paths, PERCENTILES, axis=0),
    )


def simulate_trades(
    pnls: FloatArray,
    *,
    initial_equity: float,
    method: MonteCarloMethod = MonteCarloMethod.TRADE_BOOTSTRAP,
    simulations: int = 1000,
    seed: int = 0,
    ruin_loss_pct: float = 50.0,
) -> MonteCarloResult:
    """Resample a sequence of trade P&Ls (account currency) into equity paths."""
    _validate(simulations, initial_equity, ruin_loss_pct)
    trades = np.asarray(pnls, dtype=np.float64)
    if trades.size == 0:
        raise ValueError("there are no trades to resample")
    generator = np.random.default_rng(seed)
    if method is MonteCarloMethod.TRADE_RESHUFFLE:
        drawn = generator.permuted(np.tile(trades, (simulations, 1)), axis=1)
    elif method is MonteCarloMethod.TRADE_BOOTSTRAP:
        drawn = trades[generator.integers(0, trades.size, size=(simulations, trades.size))]
    else:
        raise ValueError(f"{method.value} resamples returns: use simulate_returns")
    paths = initial_equity + np.cumsum(drawn, axis=1)
    start = np.full((simulations, 1), initial_equity)
    return _result(method, np.hstack([start, paths]), initial_equity, ruin_loss_pct)


def simulate_returns(
    returns: FloatArray,
    *,
    initial_equity: float,
    simulations: int = 1000,
    block_size: int = 1,
    seed: int = 0,
    ruin_loss_pct: float = 50.0,
) -> MonteCarloResult:
    """Block-bootstrap per-bar simple returns into compounded equity paths.

    Blocks of ``block_size`` consecutive returns keep short-range autocorrelation.
    """
    _validate(simulations, initial_equity, ruin_loss_pct)
    values = np.asarray(returns, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise ValueError("at least two returns are needed")
    if not 1 <= block_size <= values.size:
        raise ValueError("block_size must be within 1..len(returns)")
    generator = np.random.default_rng(seed)
    blocks = -(-values.size // block_size)
    starts = generator.integers(0, values.size - block_size + 1, size=(simulations, blocks))
    indices = (starts[:, :, None] + np.arange(block_size)).reshape(simulations, -1)
    drawn = values[indices[:, : values.size]]
    growth = np.cumprod(1.0 + drawn, axis=1)
    paths = np.hstack([np.ones((simulations, 1)), growth]) * initial_equity
    return _result(MonteCarloMethod.RETURN_BOOTSTRAP, paths, initial_equity, ruin_loss_pct)
