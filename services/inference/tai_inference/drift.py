"""Drift: population stability per feature and rolling prediction quality.

* PSI: the training rows' decile edges and proportions are stored with the model; the live
  window of the last ``window`` feature vectors is binned on the same edges every
  ``check_every`` bars. ``PSI = sum((actual - expected) * ln(actual / expected))`` with
  proportions floored at 1e-4; above ``psi_threshold`` (0.25 is the usual "significant
  shift") a feature has drifted.
* Prediction quality: each prediction is resolved online by the triple barrier of the trade
  plan the model was trained for (its own streaming ATR); the rolling log-loss of the last
  ``quality_window`` resolved predictions is compared with the model's out-of-sample log-loss
  and flagged when it is worse by more than ``quality_tolerance`` (relative).

Each finding is reported once per model: a drifted model is marked for retraining, it does not
need an alert per bar. Work per bar is bounded by constants (window size, horizon).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tai_events.ml import TradePlan
from tai_quant.features.labels import BarrierLabel, TripleBarrier
from tai_quant.indicators import AverageTrueRange

FloatArray = npt.NDArray[np.float64]
_FLOOR = 1e-4


def population_stability_index(
    edges: FloatArray, expected: FloatArray, actual_values: FloatArray
) -> float:
    """Return the PSI of ``actual_values`` binned on ``edges`` against ``expected`` proportions."""
    counts = np.bincount(
        np.searchsorted(edges, actual_values, side="right"), minlength=len(edges) + 1
    )
    actual = np.maximum(counts / max(counts.sum(), 1), _FLOOR)
    reference = np.maximum(expected, _FLOOR)
    return float(np.sum((actual - reference) * np.log(actual / reference)))


@dataclass(frozen=True)
class DriftSettings:
    """Thresholds of the drift monitor."""

    window: int = 500
    check_every: int = 100
    psi_threshold: float = 0.25
    quality_window: int = 200
    quality_tolerance: float = 0.15


@dataclass(frozen=True)
class DriftFinding:
    """A threshold crossed: ``feature_drift`` or ``prediction_quality``."""

    code: str
    message: str
    details: dict[str, str]


@dataclass
class _Pending:
    label: BarrierLabel
    probabilities: tuple[float, float, float]


class DriftMonitor:
    """Watches one served model's inputs and outcomes."""

    def __init__(
        self,
        *,
        feature_names: list[str],
        psi_reference: dict[str, Any],
        reference_log_loss: float,
        plan: TradePlan,
        settings: DriftSettings | None = None,
    ) -> None:
        self.settings = settings or DriftSettings()
        self._names = feature_names
        self._edges = [np.asarray(psi_reference[name]["edges"]) for name in feature_names]
        self._expected = [np.asarray(psi_reference[name]["proportions"]) for name in feature_names]
        self._reference_log_loss = reference_log_loss
        self._barrier = TripleBarrier(
            take_profit=plan.take_profit_atr,
            stop_loss=plan.stop_loss_atr,
            max_horizon=plan.max_horizon_bars,
            atr_period=plan.atr_period,
        )
        self._atr = AverageTrueRange(plan.atr_period)
        self._rows: deque[FloatArray] = deque(maxlen=self.settings.window)
        self._since_check = 0
        self._pending: deque[_Pending] = deque()
        self._losses: deque[float] = deque(maxlen=self.settings.quality_window)
        self._loss_sum = 0.0
        self.feature_drift_reported = False
        self.quality_reported = False
        self.last_psi: dict[str, float] = {}

    @property
    def rolling_log_loss(self) -> float | None:
        """Return the rolling log-loss of resolved predictions (None before any)."""
        return self._loss_sum / len(self._losses) if self._losses else None

    def observe(
        self,
        *,
        high: float,
        low: float,
        close: float,
        row: FloatArray,
        probabilities: tuple[float, float, float] | None,
    ) -> list[DriftFinding]:
        """Consume one bar (and the prediction made on it); return newly crossed thresholds."""
        findings: list[DriftFinding] = []
        self._resolve(high, low)
        atr = self._atr.update(high, low, close)
        if probabilities is not None and atr is not None:
            self._pending.append(_Pending(BarrierLabel(close, atr, self._barrier), probabilities))
        self._rows.append(row)
        self._since_check += 1
        if (
            len(self._rows) == self.settings.window
            and self._since_check >= self.settings.check_every
        ):
            self._since_check = 0
            finding = self._check_features()
            if finding is not None:
                findings.append(finding)
        finding = self._check_quality()
        if finding is not None:
            findings.append(finding)
        return findings

    def _resolve(self, high: float, low: float) -> None:
        kept: deque[_Pending] = deque()
        for pending in self._pending:
            label = pending.label.update(high, low)
            if label is None:
                kept.append(pending)
                continue
            self._record_loss(-math.log(max(pending.probabilities[int(label)], 1e-12)))
        self._pending = kept

    def _record_loss(self, loss: float) -> None:
        if len(self._losses) == self._losses.maxlen:
            self._loss_sum -= self._losses[0]
        self._losses.append(loss)
        self._loss_sum += loss

    def _check_features(self) -> DriftFinding | None:
        window = np.vstack(self._rows)
        self.last_psi = {
            name: population_stability_index(
                self._edges[column], self._expected[column], window[:, column]
            )
            for column, name in enumerate(self._names)
        }
        drifted = {
            name: value
            for name, value in self.last_psi.items()
            if value > self.settings.psi_threshold
        }
        if not drifted or self.feature_drift_reported:
            return None
        self.feature_drift_reported = True
        worst = sorted(drifted.items(), key=lambda item: -item[1])[:10]
        return DriftFinding(
            code="feature_drift",
            message=(
                f"{len(drifted)} feature(s) drifted (PSI > {self.settings.psi_threshold}): "
                + ", ".join(f"{name}={value:.3f}" for name, value in worst)
            ),
            details={name: f"{value:.4f}" for name, value in worst},
        )

    def _check_quality(self) -> DriftFinding | None:
        if self.quality_reported or len(self._losses) < self.settings.quality_window:
            return None
        rolling = self._loss_sum / len(self._losses)
        limit = self._reference_log_loss * (1.0 + self.settings.quality_tolerance)
        if rolling <= limit:
            return None
        self.quality_reported = True
        return DriftFinding(
            code="prediction_quality",
            message=(
                f"rolling log-loss {rolling:.4f} over {len(self._losses)} predictions exceeds "
                f"{limit:.4f} (reference {self._reference_log_loss:.4f})"
            ),
            details={
                "rolling_log_loss": f"{rolling:.6f}",
                "reference_log_loss": f"{self._reference_log_loss:.6f}",
                "window": str(len(self._losses)),
            },
        )
