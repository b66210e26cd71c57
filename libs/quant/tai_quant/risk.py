"""Risk maths: value at risk, expected shortfall, correlation groups, Kelly and position sizing.

Conventions:

* Returns and P&L are positive for gains. VaR and expected shortfall (ES, CVaR) are reported as
  *losses*, positive numbers: ``VaR_c = -q_{1-c}`` where ``q_p`` is the p-quantile of the
  return (or P&L) distribution, and ``ES_c = -E[X | X <= q_{1-c}]``. A negative VaR means that
  even the tail outcome is a gain. ES >= VaR always.
* Historical quantile: the empirical quantile with no interpolation (Hyndman-Fan type 1,
  numpy ``method="inverted_cdf"``): the smallest sample value x with ``#{X <= x} / n >= p``,
  i.e. the ``ceil(n * p)``-th smallest sample. ``p = 1 - confidence`` is rounded to 12 decimals
  first, so that a confidence of 0.95 means exactly the 5 % tail (``1 - 0.95`` is
  0.05000000000000004 in binary floating point). Historical ES averages every sample at or
  below that value.
* Parametric: X ~ Normal(mean, std) with the sample mean and sample std (ddof=1):
  ``VaR = z_c * std - mean`` and ``ES = std * phi(z_c) / (1 - c) - mean``.
* Monte Carlo: draws from a multivariate normal (mean vector, covariance) with a seeded numpy
  Generator; portfolio P&L = draws @ notionals; VaR/ES are the historical estimators applied to
  the simulated P&L.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
ArrayLike = Sequence[float] | FloatArray | pd.Series

_STANDARD_NORMAL = NormalDist()


class RiskMethod(StrEnum):
    """How a VaR / ES estimate was obtained."""

    HISTORICAL = "historical"
    PARAMETRIC = "parametric"
    MONTE_CARLO = "monte_carlo"


@dataclass(frozen=True, slots=True)
class RiskEstimate:
    """A VaR and ES pair at one confidence level, as positive losses."""

    value_at_risk: float
    expected_shortfall: float
    confidence: float
    method: RiskMethod


def _require_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(confidence)


def _sample(returns: ArrayLike, minimum: int = 1) -> FloatArray:
    values = np.asarray(returns, dtype=np.float64).ravel()
    if values.shape[0] < minimum:
        raise ValueError(f"at least {minimum} observations are needed")
    if not np.all(np.isfinite(values)):
        raise ValueError("returns must be finite")
    return values


def tail_probability(confidence: float) -> float:
    """Return ``1 - confidence`` rounded to 12 decimals (see the module docstring)."""
    return round(1.0 - _require_confidence(confidence), 12)


def empirical_quantile(values: ArrayLike, probability: float) -> float:
    """Return the type-1 empirical quantile: the ``ceil(n * p)``-th smallest value (p > 0)."""
    ordered = np.sort(_sample(values))
    if not 0.0 < probability <= 1.0:
        raise ValueError("probability must be in (0, 1]")
    # round() first: n * p computed in binary may land a hair above an exact integer.
    rank = max(1, math.ceil(round(ordered.shape[0] * probability, 9)))
    return float(ordered[rank - 1])


def historical_var(returns: ArrayLike, confidence: float = 0.95) -> float:
    """Return the historical VaR: minus the empirical (1 - confidence) quantile."""
    return -empirical_quantile(returns, tail_probability(confidence))


def historical_expected_shortfall(returns: ArrayLike, confidence: float = 0.95) -> float:
    """Return the historical ES: minus the mean of samples at or below the VaR quantile."""
    values = _sample(returns)
    threshold = -historical_var(values, confidence)
    # Averaging the (non-positive) excesses below the threshold keeps ES >= VaR exact in
    # floating point; a plain mean of equal tail values can round above the threshold.
    tail = values[values <= threshold] - threshold
    return -(threshold + float(np.mean(tail)))


def historical_risk(returns: ArrayLike, confidence: float = 0.95) -> RiskEstimate:
    """Return historical VaR and ES together."""
    return RiskEstimate(
        historical_var(returns, confidence),
        historical_expected_shortfall(returns, confidence),
        confidence,
        RiskMethod.HISTORICAL,
    )


def normal_risk(mean: float, std: float, confidence: float = 0.95) -> RiskEstimate:
    """Return VaR and ES of a Normal(mean, std) outcome."""
    level = _require_confidence(confidence)
    if not (math.isfinite(mean) and math.isfinite(std)) or std < 0.0:
        raise ValueError("mean must be finite and std finite and non-negative")
    z_score = _STANDARD_NORMAL.inv_cdf(level)
    value_at_risk = z_score * std - mean
    expected_shortfall = std * _STANDARD_NORMAL.pdf(z_score) / (1.0 - level) - mean
    return RiskEstimate(value_at_risk, expected_shortfall, level, RiskMethod.PARAMETRIC)


def parametric_risk(returns: ArrayLike, confidence: float = 0.95) -> RiskEstimate:
    """Return normal VaR and ES fitted to a sample (sample mean, std with ddof=1)."""
    values = _sample(returns, minimum=2)
    return normal_risk(float(np.mean(values)), float(np.std(values, ddof=1)), confidence)


def parametric_var(returns: ArrayLike, confidence: float = 0.95) -> float:
    """Return the normal (parametric) VaR fitted to a sample."""
    return parametric_risk(returns, confidence).value_at_risk


def parametric_expected_shortfall(returns: ArrayLike, confidence: float = 0.95) -> float:
    """Return the normal (parametric) ES fitted to a sample."""
    return parametric_risk(returns, confidence).expected_shortfall


def monte_carlo_risk(
    mean: ArrayLike,
    covariance: npt.ArrayLike,
    notionals: ArrayLike,
    confidence: float = 0.95,
    *,
    rng: np.random.Generator,
    simulations: int = 100_000,
) -> RiskEstimate:
    """Return Monte Carlo VaR and ES (currency) of positions with multivariate normal returns.

    ``mean`` and ``covariance`` describe per-asset returns over the horizon; ``notionals`` are
    the signed position values (negative for shorts) in the same asset order.
    """
    level = _require_confidence(confidence)
    means = _sample(mean)
    exposure = _sample(notionals)
    matrix = np.asarray(covariance, dtype=np.float64)
    if matrix.shape != (means.shape[0], means.shape[0]) or exposure.shape != means.shape:
        raise ValueError("mean, covariance and notionals must describe the same assets")
    if simulations < 1:
        raise ValueError("simulations must be positive")
    draws = rng.multivariate_normal(means, matrix, size=simulations, method="cholesky")
    profit_and_loss = draws @ exposure
    return RiskEstimate(
        historical_var(profit_and_loss, level),
        historical_expected_shortfall(profit_and_loss, level),
        level,
        RiskMethod.MONTE_CARLO,
    )


def _aligned_notionals(
    returns: pd.DataFrame, notionals: Mapping[str, float] | pd.Series
) -> FloatArray:
    positions = pd.Series(notionals, dtype=np.float64)
    missing = set(positions.index) - set(returns.columns)
    if missing:
        raise ValueError(f"no return history for {sorted(missing)}")
    return positions.reindex(returns.columns, fill_value=0.0).to_numpy(dtype=np.float64)


def portfolio_risk(
    returns: pd.DataFrame,
    notionals: Mapping[str, float] | pd.Series,
    confidence: float = 0.95,
    method: RiskMethod = RiskMethod.HISTORICAL,
    *,
    rng: np.random.Generator | None = None,
    simulations: int = 100_000,
) -> RiskEstimate:
    """Return the VaR and ES (currency) of positions from per-asset return history.

    ``returns`` has one column per asset (rows are aligned periods, NaN rows are dropped);
    ``notionals`` maps assets to signed position values. Historical replays the rows against
    today's notionals; parametric uses the portfolio mean and ``sqrt(w' Σ w)``; Monte Carlo
    simulates from the sample mean and covariance (and needs ``rng``).
    """
    history = returns.dropna()
    if history.empty:
        raise ValueError("returns has no complete row")
    weights = _aligned_notionals(history, notionals)
    matrix = history.to_numpy(dtype=np.float64)
    if method is RiskMethod.HISTORICAL:
        return historical_risk(matrix @ weights, confidence)
    if matrix.shape[0] < 2:
        raise ValueError("at least two rows are needed to estimate a covariance")
    means = matrix.mean(axis=0)
    covariance = np.atleast_2d(np.cov(matrix, rowvar=False, ddof=1))
    if method is RiskMethod.PARAMETRIC:
        variance = float(weights @ covariance @ weights)
        return normal_risk(float(means @ weights), math.sqrt(max(variance, 0.0)), confidence)
    if rng is None:
        raise ValueError("Monte Carlo needs a seeded numpy Generator (rng)")
    return monte_carlo_risk(
        means, covariance, weights, confidence, rng=rng, simulations=simulations
    )


def correlation_groups(correlation: pd.DataFrame, threshold: float = 0.7) -> list[tuple[str, ...]]:
    """Group assets linked by ``|rho| >= threshold`` (transitively, via union-find).

    Every asset is in exactly one group (uncorrelated assets form singletons); groups are
    sorted tuples, listed in order of their first name. NaN correlations link nothing.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError("threshold must be in [0, 1]")
    names = [str(name) for name in correlation.columns]
    if [str(name) for name in correlation.index] != names:
        raise ValueError("the correlation matrix must have the same labels on both axes")
    parent = list(range(len(names)))

    def find(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]  # path halving keeps the trees flat
            item = parent[item]
        return item

    matrix = correlation.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        linked = np.abs(matrix) >= threshold
    for row, column in zip(*np.nonzero(np.triu(linked, k=1)), strict=True):
        root_row, root_column = find(int(row)), find(int(column))
        if root_row != root_column:
            parent[max(root_row, root_column)] = min(root_row, root_column)
    groups: dict[int, list[str]] = {}
    for position, name in enumerate(names):
        groups.setdefault(find(position), []).append(name)
    return sorted(tuple(sorted(members)) for members in groups.values())


def kelly_fraction(
    win_probability: float,
    payoff_ratio: float,
    *,
    fraction: float = 0.5,
    cap: float = 0.25,
) -> float:
    """Return the fractional Kelly bet, clipped to [0, cap].

    Full Kelly is ``f* = p - (1 - p) / b`` for win probability p and payoff ratio b (average
    win / average loss); the result is ``min(max(fraction * f*, 0), cap)``: no bet without an
    edge, never more than ``cap`` of equity.
    """
    if not 0.0 <= win_probability <= 1.0:
        raise ValueError("win_probability must be in [0, 1]")
    if not (math.isfinite(payoff_ratio) and payoff_ratio > 0.0):
        raise ValueError("payoff_ratio must be positive")
    if not 0.0 < fraction <= 1.0:
        raise ValueError("fraction must be in (0, 1]")
    if not 0.0 <= cap <= 1.0:
        raise ValueError("cap must be in [0, 1]")
    full_kelly = win_probability - (1.0 - win_probability) / payoff_ratio
    return min(max(fraction * full_kelly, 0.0), cap)


def position_size(
    equity: float,
    risk_fraction: float,
    stop_distance: float,
    *,
    value_per_point: float = 1.0,
) -> float:
    """Return the units to trade so that hitting the stop loses ``equity * risk_fraction``.

    ``units = equity * risk_fraction / (stop_distance * value_per_point)``; ``stop_distance`` is
    in price points and ``value_per_point`` the account-currency value of one point per unit
    (contract multiplier). Rounding to lot sizes is left to the broker adapter.
    """
    if not (math.isfinite(equity) and equity >= 0.0):
        raise ValueError("equity must be finite and non-negative")
    if not 0.0 <= risk_fraction <= 1.0:
        raise ValueError("risk_fraction must be in [0, 1]")
    if not (math.isfinite(stop_distance) and stop_distance > 0.0):
        raise ValueError("stop_distance must be positive")
    if not (math.isfinite(value_per_point) and value_per_point > 0.0):
        raise ValueError("value_per_point must be positive")
    return equity * risk_fraction / (stop_distance * value_per_point)
