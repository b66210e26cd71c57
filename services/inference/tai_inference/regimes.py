"""Market regimes: a 3-state Gaussian HMM on return and volatility, filtered causally.

``fit_regime_model`` fits hmmlearn's ``GaussianHMM`` (diagonal covariances, fixed seed) on
standardised ``log_return_12`` and ``volatility_24`` of the training rows only, and maps its
states deterministically: the state with the highest mean volatility is ``volatile``; of the
other two, the one with the larger absolute mean return is ``trend``, the last ``range``.

Serving never uses the HMM's smoothed (forward-backward) posteriors, which look at the future:
``RegimeFilter`` runs the forward filter, one O(states^2) step per bar, and the batch
``filtered_regime_probabilities`` runs the very same step over a series, so training and
serving see identical regime probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

REGIMES = ("trend", "range", "volatile")
"""Regime names, in the order of the regime probability features."""
REGIME_FEATURES = tuple(f"regime_{name}" for name in REGIMES)
OBSERVED_FEATURES = ("log_return_12", "volatility_24")
"""Features the HMM observes (taken from the feature vector, so they share its parity)."""


@dataclass(frozen=True)
class RegimeModel:
    """Fitted HMM parameters, already permuted into ``REGIMES`` order (JSON-serialisable)."""

    start_probabilities: tuple[float, ...]
    transitions: tuple[tuple[float, ...], ...]
    means: tuple[tuple[float, ...], ...]
    variances: tuple[tuple[float, ...], ...]
    observation_mean: tuple[float, ...]
    observation_scale: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the parameters as plain JSON data."""
        return {
            "start_probabilities": list(self.start_probabilities),
            "transitions": [list(row) for row in self.transitions],
            "means": [list(row) for row in self.means],
            "variances": [list(row) for row in self.variances],
            "observation_mean": list(self.observation_mean),
            "observation_scale": list(self.observation_scale),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegimeModel:
        """Rebuild the parameters from :meth:`to_json` output."""
        return cls(
            start_probabilities=tuple(float(x) for x in data["start_probabilities"]),
            transitions=tuple(tuple(float(x) for x in row) for row in data["transitions"]),
            means=tuple(tuple(float(x) for x in row) for row in data["means"]),
            variances=tuple(tuple(float(x) for x in row) for row in data["variances"]),
            observation_mean=tuple(float(x) for x in data["observation_mean"]),
            observation_scale=tuple(float(x) for x in data["observation_scale"]),
        )


def fit_regime_model(observations: FloatArray, *, seed: int = 7) -> RegimeModel:
    """Fit the 3-state HMM on raw (unscaled) observations of ``OBSERVED_FEATURES``."""
    from hmmlearn.hmm import GaussianHMM  # noqa: PLC0415  (heavy import, training only)
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # noqa: PLC0415

    if observations.ndim != 2 or observations.shape[1] != len(OBSERVED_FEATURES):
        raise ValueError(f"observations must have {len(OBSERVED_FEATURES)} columns")
    mean = observations.mean(axis=0)
    scale = observations.std(axis=0)
    scale[scale == 0.0] = 1.0
    scaled = (observations - mean) / scale
    hmm = GaussianHMM(
        n_components=len(REGIMES),
        covariance_type="diag",
        n_iter=100,
        tol=1e-4,
        random_state=seed,
    )
    with threadpool_limits(1):
        # k-means initialisation of a few thousand rows: OpenMP threads cost more than they
        # save (3x slower on a busy two-core host).
        hmm.fit(scaled)
    state_means = np.asarray(hmm.means_, dtype=np.float64)
    variances = np.asarray([np.diag(matrix) for matrix in hmm.covars_], dtype=np.float64)
    volatile = int(np.argmax(state_means[:, 1]))
    others = [state for state in range(len(REGIMES)) if state != volatile]
    others.sort(key=lambda state: (-abs(float(state_means[state, 0])), state))
    order = [others[0], others[1], volatile]  # trend, range, volatile
    transitions = np.asarray(hmm.transmat_, dtype=np.float64)[np.ix_(order, order)]
    return RegimeModel(
        start_probabilities=tuple(float(x) for x in np.asarray(hmm.startprob_)[order]),
        transitions=tuple(tuple(float(x) for x in row) for row in transitions),
        means=tuple(tuple(float(x) for x in state_means[state]) for state in order),
        variances=tuple(tuple(float(x) for x in variances[state]) for state in order),
        observation_mean=tuple(float(x) for x in mean),
        observation_scale=tuple(float(x) for x in scale),
    )


class RegimeFilter:
    """Forward-filtered regime probabilities, one bar at a time (no look-ahead)."""

    def __init__(self, model: RegimeModel) -> None:
        self.model = model
        self._log_start = np.log(np.maximum(np.asarray(model.start_probabilities), 1e-300))
        self._transitions = np.asarray(model.transitions, dtype=np.float64)
        self._means = np.asarray(model.means, dtype=np.float64)
        self._variances = np.asarray(model.variances, dtype=np.float64)
        self._log_normaliser = -0.5 * np.log(2.0 * math.pi * self._variances).sum(axis=1)
        self._observation_mean = np.asarray(model.observation_mean, dtype=np.float64)
        self._observation_scale = np.asarray(model.observation_scale, dtype=np.float64)
        self._posterior: FloatArray | None = None

    @property
    def probabilities(self) -> FloatArray | None:
        """The latest filtered probabilities in ``REGIMES`` order (None before a bar)."""
        return self._posterior

    def update(self, observation: Sequence[float] | FloatArray) -> FloatArray:
        """Consume one raw observation and return the filtered regime probabilities."""
        scaled = (np.asarray(observation, dtype=np.float64) - self._observation_mean) / (
            self._observation_scale
        )
        log_likelihood = self._log_normaliser - 0.5 * (
            (scaled - self._means) ** 2 / self._variances
        ).sum(axis=1)
        if self._posterior is None:
            log_prior = self._log_start
        else:
            log_prior = np.log(np.maximum(self._posterior @ self._transitions, 1e-300))
        joint = log_prior + log_likelihood
        joint -= joint.max()
        posterior = np.exp(joint)
        self._posterior = posterior / posterior.sum()
        return self._posterior


def filtered_regime_probabilities(model: RegimeModel, observations: FloatArray) -> FloatArray:
    """Return the filtered probabilities of every row (the batch twin of ``RegimeFilter``)."""
    regime_filter = RegimeFilter(model)
    result = np.empty((observations.shape[0], len(REGIMES)), dtype=np.float64)
    for row, observation in enumerate(observations):
        result[row] = regime_filter.update(observation)
    return result


def regime_name(probabilities: FloatArray) -> str:
    """Return the most probable regime's name."""
    return REGIMES[int(np.argmax(probabilities))]
