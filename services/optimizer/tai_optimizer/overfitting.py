"""Overfitting guards: the deflated Sharpe ratio and the probability of backtest overfitting.

* Deflated Sharpe ratio (Bailey & López de Prado, 2014): the probability that the best Sharpe
  of N trials beats the Sharpe the best of N *worthless* trials would reach by luck, given
  the sample length, skewness and kurtosis of its returns.
* PBO by combinatorially symmetric cross-validation (Bailey, Borwein, López de Prado & Zhu,
  2016): split time into S blocks, use every half as in-sample and the rest as out-of-sample,
  and count how often the in-sample winner ranks below the out-of-sample median.

All Sharpe ratios here are per period (not annualised), as the formulas require.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

EULER_MASCHERONI = 0.5772156649015329
_NORMAL = NormalDist()

FloatArray = npt.NDArray[np.float64]


def per_period_sharpe(returns: FloatArray) -> float:
    """Return mean / sample standard deviation of the returns (0 without spread)."""
    values = np.asarray(returns, dtype=np.float64)
    if values.size < 2:
        return 0.0
    deviation = float(np.std(values, ddof=1))
    return float(np.mean(values) / deviation) if deviation > 0 else 0.0


def expected_maximum_sharpe(sharpe_variance: float, trials: int) -> float:
    """Return the expected best per-period Sharpe of ``trials`` skill-less strategies."""
    if trials < 1:
        raise ValueError("trials must be at least 1")
    if trials == 1 or sharpe_variance <= 0:
        return 0.0
    return math.sqrt(sharpe_variance) * (
        (1 - EULER_MASCHERONI) * _NORMAL.inv_cdf(1 - 1 / trials)
        + EULER_MASCHERONI * _NORMAL.inv_cdf(1 - 1 / (trials * math.e))
    )


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark: float, observations: int, skewness: float, kurtosis: float
) -> float:
    """Return P(true Sharpe > benchmark) for an observed per-period Sharpe.

    ``kurtosis`` is the plain (non-excess) kurtosis: 3 for normal returns.
    """
    if observations < 2:
        raise ValueError("at least two observations are needed")
    variance = 1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if variance <= 0:
        return 1.0 if sharpe > benchmark else 0.0
    statistic = (sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(variance)
    return _NORMAL.cdf(statistic)


def sample_moments(returns: FloatArray) -> tuple[float, float]:
    """Return the (biased, population) skewness and plain kurtosis; (0, 3) without spread."""
    values = np.asarray(returns, dtype=np.float64)
    deviation = float(np.std(values))
    if values.size < 4 or deviation == 0.0:
        return 0.0, 3.0
    standardised = (values - values.mean()) / deviation
    return float(np.mean(standardised**3)), float(np.mean(standardised**4))


@dataclass(frozen=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio and what it was computed from."""

    probability: float
    sharpe: float
    benchmark_sharpe: float
    trials: int
    observations: int
    skewness: float
    kurtosis: float

    def to_dict(self) -> dict[str, float | int]:
        """Return a JSON-ready dict."""
        return {
            "deflated_sharpe": self.probability,
            "per_period_sharpe": self.sharpe,
            "expected_max_sharpe": self.benchmark_sharpe,
            "trials": self.trials,
            "observations": self.observations,
            "skewness": self.skewness,
            "kurtosis": self.kurtosis,
        }


def deflated_sharpe_ratio(best_returns: FloatArray, trial_sharpes: FloatArray) -> DeflatedSharpe:
    """Return the DSR of the chosen strategy's returns, deflated by the trials' Sharpe spread.

    ``trial_sharpes`` holds the per-period Sharpe of every trial tried (the chosen one too).
    """
    returns = np.asarray(best_returns, dtype=np.float64)
    sharpes = np.asarray(trial_sharpes, dtype=np.float64)
    sharpes = sharpes[np.isfinite(sharpes)]
    trials = max(1, int(sharpes.size))
    variance = float(np.var(sharpes, ddof=1)) if sharpes.size > 1 else 0.0
    sharpe = per_period_sharpe(returns)
    skewness, kurtosis = sample_moments(returns)
    benchmark = expected_maximum_sharpe(variance, trials)
    probability = probabilistic_sharpe_ratio(
        sharpe, benchmark, max(2, int(returns.size)), skewness, kurtosis
    )
    return DeflatedSharpe(
        probability, sharpe, benchmark, trials, int(returns.size), skewness, kurtosis
    )


@dataclass(frozen=True)
class ProbabilityOfOverfitting:
    """PBO and the distribution it came from."""

    probability: float
    logits: FloatArray
    combinations: int
    partitions: int
    trials: int

    def to_dict(self) -> dict[str, float | int | None]:
        """Return a JSON-ready dict."""
        finite = self.logits[np.isfinite(self.logits)]
        return {
            "pbo": self.probability,
            "combinations": self.combinations,
            "partitions": self.partitions,
            "trials": self.trials,
            "median_logit": float(np.median(finite)) if finite.size else None,
        }


def probability_of_backtest_overfitting(
    returns: FloatArray, partitions: int = 16
) -> ProbabilityOfOverfitting:
    """Return the CSCV PBO of a (observations x trials) matrix of per-period returns.

    Rows are split into ``partitions`` (even) contiguous blocks; every choice of half the
    blocks is an in-sample set, its complement out-of-sample. The in-sample best (by Sharpe)
    gets a relative out-of-sample rank w in (0, 1); PBO is the share of logit(w) <= 0.
    """
    matrix = np.asarray(returns, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValueError("returns must be a 2-D matrix with at least two trials (columns)")
    if partitions < 2 or partitions % 2:
        raise ValueError("partitions must be an even number of at least 2")
    observations, trials = matrix.shape
    if observations < 2 * partitions:
        raise ValueError(f"{observations} observations are too few for {partitions} partitions")
    blocks = np.array_split(np.arange(observations), partitions)
    # Per-block sums let every combination's mean and variance come from 8 additions.
    counts = np.array([block.size for block in blocks], dtype=np.float64)
    sums = np.stack([matrix[block].sum(axis=0) for block in blocks])
    squares = np.stack([(matrix[block] ** 2).sum(axis=0) for block in blocks])
    logits: list[float] = []
    half = partitions // 2
    everything = frozenset(range(partitions))
    for chosen in itertools.combinations(range(partitions), half):
        in_sample = list(chosen)
        out_of_sample = sorted(everything.difference(chosen))
        in_sharpe = _sharpe_from_moments(counts, sums, squares, in_sample)
        out_sharpe = _sharpe_from_moments(counts, sums, squares, out_of_sample)
        best = int(np.argmax(in_sharpe))
        # Rank 1 = worst out of sample; ties share the average rank.
        chosen_sharpe = out_sharpe[best]
        below = int(np.count_nonzero(out_sharpe < chosen_sharpe))
        ties = int(np.count_nonzero(out_sharpe == chosen_sharpe))
        rank = below + (ties + 1) / 2.0
        relative = rank / (trials + 1)
        logits.append(math.log(relative / (1 - relative)))
    values = np.asarray(logits, dtype=np.float64)
    return ProbabilityOfOverfitting(
        probability=float(np.mean(values <= 0)),
        logits=values,
        combinations=len(logits),
        partitions=partitions,
        trials=trials,
    )


def _sharpe_from_moments(
    counts: FloatArray, sums: FloatArray, squares: FloatArray, blocks: list[int]
) -> FloatArray:
    count = float(counts[blocks].sum())
    total = sums[blocks].sum(axis=0)
    total_squares = squares[blocks].sum(axis=0)
    mean = total / count
    variance = np.maximum((total_squares - count * mean**2) / (count - 1), 0.0)
    deviation = np.sqrt(variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(deviation > 0, mean / deviation, 0.0)
    return np.asarray(sharpe, dtype=np.float64)
