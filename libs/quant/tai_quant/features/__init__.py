"""Features, labels and leakage-free validation for the ML pipeline (pure numpy/pandas).

One :class:`FeatureSetDefinition` drives two implementations that agree to 1e-9: the batch
:func:`compute_features` (training) and the O(1)-per-bar :class:`IncrementalFeatures`
(inference).
"""

from tai_quant.features.batch import compute_features, normalise_ohlcv
from tai_quant.features.definition import DEFAULT_FEATURES, OHLCV_COLUMNS, FeatureSetDefinition
from tai_quant.features.incremental import FeatureBar, IncrementalFeatures, feature_bars
from tai_quant.features.labels import (
    BarrierTrades,
    Label,
    TripleBarrier,
    simulate_barrier_trades,
    triple_barrier_labels,
)
from tai_quant.features.validation import Fold, purged_walk_forward_folds

__all__ = [
    "DEFAULT_FEATURES",
    "OHLCV_COLUMNS",
    "BarrierTrades",
    "FeatureBar",
    "FeatureSetDefinition",
    "Fold",
    "IncrementalFeatures",
    "Label",
    "TripleBarrier",
    "compute_features",
    "feature_bars",
    "normalise_ohlcv",
    "purged_walk_forward_folds",
    "simulate_barrier_trades",
    "triple_barrier_labels",
]
