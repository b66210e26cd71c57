"""Train, evaluate and package a model: features -> triple-barrier class probabilities.

The pipeline, all on data strictly in time order:

1. features (:mod:`tai_quant.features`, the same definition the service computes live) and
   triple-barrier labels of the model's :class:`~tai_events.ml.TradePlan` (target, stop,
   horizon); the plan's probability threshold decides which predictions the validation
   trades, at the same barriers;
2. purged + embargoed walk-forward folds; per fold, the regime HMM is fitted on the fold's
   training rows only and its forward-filtered probabilities join the features;
3. the model, early-stopped on the first half of the fold's validation set and calibrated on
   its second half, scored on the untouched test block beside two baselines: a single XGBoost
   model and the class prior of the fold's training labels. A model is one of:

   * ``xgboost`` / ``lightgbm``: one booster with balanced class weights and a multinomial
     logistic calibration (scikit-learn) of its log-probabilities;
   * ``ensemble``: XGBoost and LightGBM base boosters stacked by a multinomial logistic
     meta-learner fitted on their *purged out-of-fold* predictions over the training rows
     (inner purged walk-forward folds), so the meta-learner never sees a base model's
     in-sample output;
   * any of them ``per_regime``: one such model per HMM regime, trained on the rows of its
     regime and chosen at serving time by the row's most probable regime, with the
     all-regime model as the fallback for a regime with too few samples;

4. the production model is fitted the same way on all data but a final validation slice; the
   out-of-sample predictions decide, per regime, whether the model or the class prior serves,
   and the boosters' own ``pred_contribs`` / ``pred_contrib`` give SHAP importances.

Boosters are stored in their native formats only (one booster: XGBoost UBJ or LightGBM text;
several: a ``bundle-json`` of XGBoost JSON / LightGBM text); never pickle.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from tai_events.ml import DEFAULT_TRADE_PLAN, TradePlan
from tai_inference.model import (
    CLASS_ORDER,
    Calibration,
    FunctionClassifier,
    NativeClassifier,
    Predictor,
    build_predictor,
)
from tai_inference.regimes import (
    OBSERVED_FEATURES,
    REGIME_FEATURES,
    REGIMES,
    RegimeModel,
    filtered_regime_probabilities,
    fit_regime_model,
)
from tai_quant.features import (
    DEFAULT_FEATURES,
    FeatureSetDefinition,
    TripleBarrier,
    compute_features,
    normalise_ohlcv,
    purged_walk_forward_folds,
    simulate_barrier_trades,
    triple_barrier_labels,
)
from tai_store.ml_repository import ModelRecord, make_bundle

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Algorithm = Literal["xgboost", "lightgbm", "ensemble"]
ALGORITHMS: tuple[Algorithm, ...] = ("xgboost", "lightgbm", "ensemble")
BOOSTERS: tuple[str, ...] = ("xgboost", "lightgbm")
"""The base learners; ``ensemble`` stacks both."""
ARTIFACT_FORMAT = {"xgboost": "xgboost-ubj", "lightgbm": "lightgbm-text"}
BASELINE_ALGORITHM: Algorithm = "xgboost"
"""The single model every other kind is compared with."""
MIN_REGIME_VALIDATION = 30
"""Validation samples a regime needs (besides ``min_regime_samples``) for its own model."""


def barrier_of(plan: TradePlan) -> TripleBarrier:
    """Return the triple barrier (labels and simulated trades) of a trade plan."""
    return TripleBarrier(
        take_profit=plan.take_profit_atr,
        stop_loss=plan.stop_loss_atr,
        max_horizon=plan.max_horizon_bars,
        atr_period=plan.atr_period,
    )


@dataclass(frozen=True)
class TrainingOptions:
    """How to train; defaults train the demo model on hourly bars in seconds."""

    algorithm: Algorithm = "xgboost"
    per_regime: bool = False
    """One model per HMM regime (the row's regime chooses), the all-regime model as fallback."""
    symbol: str = "EURUSD"
    timeframe: str = "1h"
    plan: TradePlan = DEFAULT_TRADE_PLAN
    """What the classes mean (labels), when a prediction is traded, and how (its exits)."""
    folds: int = 3
    embargo: int | None = None
    """Bars purged ahead of each test block; None = the plan's horizon."""
    validation_fraction: float = 0.2
    max_rounds: int = 400
    early_stopping_rounds: int = 30
    learning_rate: float = 0.05
    max_depth: int = 4
    seed: int = 7
    threads: int = 1
    """Booster threads; 1 is fastest for these small data sets on a shared machine."""
    commission: float = 0.0001
    """Cost per side (fraction of notional) of the trades the validation simulates."""
    evaluate: bool = True
    """Run the walk-forward evaluation (off for the fast embedded demo model)."""
    stack_folds: int = 3
    """Inner purged folds giving the ensemble's meta-learner its out-of-fold predictions."""
    min_regime_samples: int = 300
    """Training samples a regime needs for its own model (else the fallback serves it)."""

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.stack_folds < 2:
            raise ValueError("stack_folds must be at least 2")

    @property
    def barrier(self) -> TripleBarrier:
        """Return the plan's triple barrier."""
        return barrier_of(self.plan)

    @property
    def kind(self) -> str:
        """Return the model kind: the algorithm, prefixed ``per_regime_`` when per regime."""
        return f"per_regime_{self.algorithm}" if self.per_regime else self.algorithm


@dataclass(frozen=True)
class TrainingResult:
    """The packaged model and the metrics it was judged by."""

    record: ModelRecord
    metrics: dict[str, Any]
    out_of_sample_returns: dict[str, FloatArray] = field(default_factory=dict)
    """Per-bar returns of the plan's trades on the walk-forward test blocks: ``model`` and,
    for other kinds than the baseline, ``single_model`` (for deflated Sharpe and PBO)."""


@dataclass(frozen=True)
class _Dataset:
    bars: pd.DataFrame
    features: pd.DataFrame
    sample_rows: IntArray  # bar positions of the labelled samples with complete features
    labels: IntArray
    label_ends: IntArray
    first_complete: int


def data_fingerprint(bars: pd.DataFrame) -> str:
    """Return the SHA-256 of the bars' timestamps and OHLCV values (the data hash)."""
    digest = hashlib.sha256()
    digest.update(pd.DatetimeIndex(bars.index).asi8.tobytes())
    digest.update(np.ascontiguousarray(bars.to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


def _prepare(
    frame: pd.DataFrame, definition: FeatureSetDefinition, barrier: TripleBarrier
) -> _Dataset:
    bars = normalise_ohlcv(frame)
    features = compute_features(bars, definition)
    complete = ~features.isna().any(axis=1).to_numpy()
    if not complete.any():
        raise ValueError("not enough bars to compute every feature")
    labels = triple_barrier_labels(bars, barrier)
    starts = labels["start_position"].to_numpy(np.int64)
    keep = complete[starts]
    return _Dataset(
        bars=bars,
        features=features,
        sample_rows=starts[keep],
        labels=labels["label"].to_numpy(np.int64)[keep],
        label_ends=labels["end_position"].to_numpy(np.int64)[keep],
        first_complete=int(np.argmax(complete)),
    )


def _regime_probabilities(
    dataset: _Dataset, train: IntArray, seed: int
) -> tuple[RegimeModel, FloatArray]:
    """Fit the HMM on the training samples; filter every bar from the first complete one."""
    observed = dataset.features.loc[:, list(OBSERVED_FEATURES)].to_numpy(np.float64)
    regime_model = fit_regime_model(observed[dataset.sample_rows[train]], seed=seed)
    probabilities = np.full((observed.shape[0], len(REGIMES)), np.nan)
    probabilities[dataset.first_complete :] = filtered_regime_probabilities(
        regime_model, observed[dataset.first_complete :]
    )
    return regime_model, probabilities


def _design(dataset: _Dataset, regime_probabilities: FloatArray) -> FloatArray:
    rows = dataset.sample_rows
    return np.hstack(
        [dataset.features.to_numpy(np.float64)[rows], regime_probabilities[rows]]
    ).astype(np.float64)


def _class_weights(labels: IntArray) -> FloatArray:
    from sklearn.utils.class_weight import compute_sample_weight  # noqa: PLC0415

    return np.asarray(compute_sample_weight("balanced", labels), dtype=np.float64)


# -- boosters ---------------------------------------------------------------------------------


@dataclass
class _Booster:
    """One fitted booster: its raw probabilities, SHAP contributions and native export."""

    raw_probabilities: Callable[[FloatArray], FloatArray]
    contributions: Callable[[FloatArray], FloatArray]
    """(n, features) rows -> mean |contribution| per feature over rows and classes."""
    best_iteration: int
    export: Callable[[bool], tuple[str, bytes]]
    """``export(text)`` -> (format, bytes); text formats only when ``text`` (for bundles)."""


def _fit_xgboost(
    options: TrainingOptions,
    x_train: FloatArray,
    y_train: IntArray,
    x_stop: FloatArray,
    y_stop: IntArray,
) -> _Booster:
    import xgboost  # noqa: PLC0415

    parameters = {
        "objective": "multi:softprob",
        "num_class": len(CLASS_ORDER),
        "eta": options.learning_rate,
        "max_depth": options.max_depth,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 5.0,
        "eval_metric": "mlogloss",
        "tree_method": "hist",
        "nthread": options.threads,
        "seed": options.seed,
    }
    train_matrix = xgboost.DMatrix(x_train, label=y_train, weight=_class_weights(y_train))
    stop_matrix = xgboost.DMatrix(x_stop, label=y_stop, weight=_class_weights(y_stop))
    booster = xgboost.train(
        parameters,
        train_matrix,
        num_boost_round=options.max_rounds,
        evals=[(stop_matrix, "validation")],
        early_stopping_rounds=options.early_stopping_rounds,
        verbose_eval=False,
    )
    best = int(booster.best_iteration)
    booster = booster[: best + 1]  # keep only the trees early stopping chose

    def raw(rows: FloatArray) -> FloatArray:
        return np.asarray(booster.inplace_predict(rows), dtype=np.float64).reshape(-1, 3)

    def contributions(rows: FloatArray) -> FloatArray:
        values = np.asarray(booster.predict(xgboost.DMatrix(rows), pred_contribs=True))
        # (n, classes, features + bias): mean |contribution| over rows and classes, no bias
        return np.asarray(np.abs(values[:, :, :-1]).mean(axis=(0, 1)), dtype=np.float64)

    def export(text: bool) -> tuple[str, bytes]:
        if text:
            return "xgboost-json", bytes(booster.save_raw(raw_format="json"))
        return "xgboost-ubj", bytes(booster.save_raw(raw_format="ubj"))

    return _Booster(raw, contributions, best, export)


def _fit_lightgbm(
    options: TrainingOptions,
    x_train: FloatArray,
    y_train: IntArray,
    x_stop: FloatArray,
    y_stop: IntArray,
) -> _Booster:
    import lightgbm  # noqa: PLC0415

    parameters = {
        "objective": "multiclass",
        "num_class": len(CLASS_ORDER),
        "learning_rate": options.learning_rate,
        "max_depth": options.max_depth,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "seed": options.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": options.threads,
        "verbose": -1,
    }
    train_set = lightgbm.Dataset(x_train, label=y_train, weight=_class_weights(y_train))
    stop_set = lightgbm.Dataset(
        x_stop, label=y_stop, weight=_class_weights(y_stop), reference=train_set
    )
    booster = lightgbm.train(
        parameters,
        train_set,
        num_boost_round=options.max_rounds,
        valid_sets=[stop_set],
        callbacks=[lightgbm.early_stopping(options.early_stopping_rounds, verbose=False)],
    )
    best = int(booster.best_iteration) or options.max_rounds
    text = booster.model_to_string(num_iteration=best)
    serving = lightgbm.Booster(model_str=text)

    def raw(rows: FloatArray) -> FloatArray:
        return np.asarray(serving.predict(rows, num_threads=1), dtype=np.float64).reshape(-1, 3)

    def contributions(rows: FloatArray) -> FloatArray:
        values = np.asarray(serving.predict(rows, pred_contrib=True), dtype=np.float64)
        width = rows.shape[1] + 1
        per_class = values.reshape(rows.shape[0], len(CLASS_ORDER), width)[:, :, :-1]
        return np.asarray(np.abs(per_class).mean(axis=(0, 1)), dtype=np.float64)

    def export(_text: bool) -> tuple[str, bytes]:
        return "lightgbm-text", text.encode("utf-8")

    return _Booster(raw, contributions, best, export)


_FITTERS = {"xgboost": _fit_xgboost, "lightgbm": _fit_lightgbm}


def _fit_calibration(raw: FloatArray, labels: IntArray) -> Calibration:
    """Fit a multinomial logistic map from log-probabilities (3 per base model) to classes."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    classes = len(CLASS_ORDER)
    bases = raw.shape[1] // classes
    present = np.unique(labels)
    if present.size < classes:
        # Too few classes to fit a multinomial map: the geometric mean of the bases' own
        # probabilities (for one base: its probabilities unchanged).
        average = tuple(
            tuple(1.0 / bases if column % classes == row else 0.0 for column in range(raw.shape[1]))
            for row in range(classes)
        )
        return Calibration(coefficients=average, intercepts=(0.0,) * classes)
    regression = LogisticRegression(C=1.0, max_iter=1000)
    regression.fit(np.log(np.clip(raw, 1e-9, 1.0)), labels)
    return Calibration(
        coefficients=tuple(tuple(float(x) for x in row) for row in regression.coef_),
        intercepts=tuple(float(x) for x in regression.intercept_),
    )


# -- models: one booster, a stack, per regime -------------------------------------------------


@dataclass
class _Fitted:
    """A fitted model: its composition (JSON), boosters by name and the predictor they make."""

    composition: dict[str, Any]
    boosters: dict[str, _Booster]
    predictor: Predictor

    @property
    def best_iteration(self) -> int:
        """Return the largest number of trees any booster kept."""
        return max(booster.best_iteration for booster in self.boosters.values())

    def contributions(self, rows: FloatArray) -> FloatArray:
        """Return the mean share-normalised SHAP contributions of the serving boosters."""
        names = (
            _components_of(self.composition["fallback"])
            if self.composition["kind"] == "per_regime"
            else _components_of(self.composition)
        )
        shares = []
        for name in names:
            values = self.boosters[name].contributions(rows)
            shares.append(values / (float(values.sum()) or 1.0))
        return np.asarray(np.mean(shares, axis=0), dtype=np.float64)


def _components_of(composition: dict[str, Any]) -> list[str]:
    if composition["kind"] == "booster":
        return [str(composition["component"])]
    return [str(name) for name in composition["components"]]


def _predictor(composition: dict[str, Any], boosters: dict[str, _Booster]) -> Predictor:
    classifiers: dict[str, NativeClassifier] = {
        name: FunctionClassifier(booster.raw_probabilities) for name, booster in boosters.items()
    }
    return build_predictor(composition, classifiers)


@dataclass(frozen=True)
class _Rows:
    """Sample positions of one fit: training, early stopping and calibration."""

    train: IntArray
    stopping: IntArray
    calibrating: IntArray

    @classmethod
    def split(cls, train: IntArray, validation: IntArray) -> _Rows:
        """Split a validation set into an early-stopping half and a calibration half."""
        half = max(1, validation.size // 2)
        stopping, calibrating = validation[:half], validation[half:]
        if calibrating.size == 0:
            calibrating = stopping
        return cls(train, stopping, calibrating)

    def subset(self, keep: npt.NDArray[np.bool_]) -> _Rows:
        """Return the rows whose sample is flagged in ``keep`` (indexed by sample)."""
        return _Rows(
            self.train[keep[self.train]],
            self.stopping[keep[self.stopping]],
            self.calibrating[keep[self.calibrating]],
        )


def _fit_booster_model(
    dataset: _Dataset,
    design: FloatArray,
    options: TrainingOptions,
    algorithm: str,
    rows: _Rows,
    prefix: str,
) -> _Fitted:
    labels = dataset.labels
    booster = _FITTERS[algorithm](
        options,
        design[rows.train],
        labels[rows.train],
        design[rows.stopping],
        labels[rows.stopping],
    )
    calibration = _fit_calibration(
        booster.raw_probabilities(design[rows.calibrating]), labels[rows.calibrating]
    )
    name = f"{prefix}{algorithm}"
    composition = {"kind": "booster", "component": name, "calibration": calibration.to_json()}
    boosters = {name: booster}
    return _Fitted(composition, boosters, _predictor(composition, boosters))


def _fit_stack(
    dataset: _Dataset, design: FloatArray, options: TrainingOptions, rows: _Rows, prefix: str
) -> _Fitted:
    """Stack XGBoost and LightGBM with a meta-learner fitted on purged out-of-fold predictions."""
    labels = dataset.labels
    train = rows.train
    embargo = options.barrier.max_horizon if options.embargo is None else options.embargo
    inner = purged_walk_forward_folds(
        dataset.sample_rows[train],
        dataset.label_ends[train],
        folds=options.stack_folds,
        embargo=embargo,
        validation_fraction=options.validation_fraction,
    )
    out_of_fold: list[FloatArray] = []
    out_of_fold_labels: list[IntArray] = []
    for fold in inner:
        fold_train, fold_stop, fold_test = (
            train[fold.train],
            train[fold.validation],
            train[fold.test],
        )
        raw = [
            _FITTERS[algorithm](
                options,
                design[fold_train],
                labels[fold_train],
                design[fold_stop],
                labels[fold_stop],
            ).raw_probabilities(design[fold_test])
            for algorithm in BOOSTERS
        ]
        out_of_fold.append(np.hstack(raw))
        out_of_fold_labels.append(labels[fold_test])
    if not out_of_fold:
        raise ValueError("too few training samples for the ensemble's out-of-fold predictions")
    meta = _fit_calibration(np.vstack(out_of_fold), np.concatenate(out_of_fold_labels))
    boosters = {
        f"{prefix}{algorithm}": _FITTERS[algorithm](
            options,
            design[train],
            labels[train],
            design[rows.stopping],
            labels[rows.stopping],
        )
        for algorithm in BOOSTERS
    }
    composition = {"kind": "stack", "components": list(boosters), "meta": meta.to_json()}
    return _Fitted(composition, boosters, _predictor(composition, boosters))


def _fit_base(
    dataset: _Dataset, design: FloatArray, options: TrainingOptions, rows: _Rows, prefix: str
) -> _Fitted:
    if options.algorithm == "ensemble":
        return _fit_stack(dataset, design, options, rows, prefix)
    return _fit_booster_model(dataset, design, options, options.algorithm, rows, prefix)


def _fit_model(
    dataset: _Dataset, design: FloatArray, options: TrainingOptions, rows: _Rows
) -> _Fitted:
    """Fit the model the options describe (per regime or not) on these rows."""
    if not options.per_regime:
        return _fit_base(dataset, design, options, rows, "")
    fallback = _fit_base(dataset, design, options, rows, "all/")
    regimes = np.argmax(design[:, -len(REGIMES) :], axis=1)
    compositions: dict[str, Any] = {}
    boosters = dict(fallback.boosters)
    for index, name in enumerate(REGIMES):
        own = rows.subset(regimes == index)
        enough = (
            own.train.size >= options.min_regime_samples
            and own.stopping.size + own.calibrating.size >= MIN_REGIME_VALIDATION
            and np.unique(dataset.labels[own.train]).size == len(CLASS_ORDER)
            and own.stopping.size > 0
        )
        if not enough:
            continue
        fitted = _fit_base(dataset, design, options, own, f"{name}/")
        compositions[name] = fitted.composition
        boosters.update(fitted.boosters)
    composition = {
        "kind": "per_regime",
        "fallback": fallback.composition,
        "regimes": compositions,
    }
    return _Fitted(composition, boosters, _predictor(composition, boosters))


@dataclass
class _FoldModel:
    fitted: _Fitted
    regime_model: RegimeModel
    design: FloatArray
    rows: _Rows


def _fit_fold(
    dataset: _Dataset,
    options: TrainingOptions,
    train: IntArray,
    validation: IntArray,
) -> _FoldModel:
    regime_model, regime_probabilities = _regime_probabilities(dataset, train, options.seed)
    design = _design(dataset, regime_probabilities)
    rows = _Rows.split(train, validation)
    return _FoldModel(_fit_model(dataset, design, options, rows), regime_model, design, rows)


# -- metrics ------------------------------------------------------------------------------------


def periods_per_year(timeframe: str) -> float:
    """Return bars per year of a timeframe on a 5-day, 24-hour market (FX)."""
    units = {"m": 60.0, "h": 3600.0, "d": 86400.0}
    seconds = float(timeframe[:-1]) * units[timeframe[-1]]
    return 260.0 * 86400.0 / seconds


def signal_directions(probabilities: FloatArray, threshold: float) -> FloatArray:
    """Return +1 (LONG), -1 (SHORT) or 0 per row: the plan's rule for taking a prediction.

    A row is traded when its most probable class is LONG or SHORT with at least ``threshold``
    probability, exactly as the ``ml_driven`` strategy takes a prediction.
    """
    predicted = probabilities.argmax(axis=1)
    long_index, short_index = CLASS_ORDER.index("LONG"), CLASS_ORDER.index("SHORT")
    directions = np.zeros(predicted.shape[0])
    directions[(predicted == long_index) & (probabilities[:, long_index] >= threshold)] = 1.0
    directions[(predicted == short_index) & (probabilities[:, short_index] >= threshold)] = -1.0
    return directions


def plan_trading_result(
    bars: pd.DataFrame,
    positions: IntArray,
    probabilities: FloatArray,
    plan: TradePlan,
    *,
    commission: float,
    bars_per_year: float,
) -> tuple[dict[str, float], FloatArray]:
    """Trade the predictions at ``positions`` by the plan; return its metrics and bar returns.

    The per-bar returns cover the bars from the first predicted bar to the last one plus the
    plan's horizon (so a late trade is closed), flat bars included.
    """
    size = len(bars)
    directions = np.zeros(size)
    directions[positions] = signal_directions(probabilities, plan.probability_threshold)
    trades = simulate_barrier_trades(bars, directions, barrier_of(plan), commission=commission)
    if positions.size == 0:
        return _returns_metrics(np.zeros(0), trades.trade_returns, bars_per_year), np.zeros(0)
    first = int(positions.min())
    last = min(int(positions.max()) + plan.max_horizon_bars, size - 1)
    returns = trades.returns[first : last + 1]
    return _returns_metrics(returns, trades.trade_returns, bars_per_year), returns


def _returns_metrics(
    returns: FloatArray, trade_returns: FloatArray, bars_per_year: float
) -> dict[str, float]:
    equity = np.cumprod(1.0 + returns)
    deviation = float(returns.std(ddof=1)) if returns.size > 1 else 0.0
    sharpe = float(returns.mean()) / deviation * math.sqrt(bars_per_year) if deviation else 0.0
    peak = np.maximum.accumulate(equity) if equity.size else equity
    drawdown = float(((peak - equity) / peak).max()) if equity.size else 0.0
    trades = int(trade_returns.size)
    return {
        "total_return_pct": float(equity[-1] - 1.0) * 100.0 if equity.size else 0.0,
        "sharpe": sharpe,
        "max_drawdown_pct": drawdown * 100.0,
        "exposure_pct": float((returns != 0.0).mean()) * 100.0 if returns.size else 0.0,
        "trades": float(trades),
        "hit_rate_pct": float((trade_returns > 0.0).mean()) * 100.0 if trades else 0.0,
        "mean_trade_return_pct": float(trade_returns.mean()) * 100.0 if trades else 0.0,
    }


def classification_metrics(probabilities: FloatArray, labels: IntArray) -> dict[str, Any]:
    """Return log-loss, balanced accuracy and per-class F1 (scikit-learn)."""
    from sklearn.metrics import balanced_accuracy_score, f1_score, log_loss  # noqa: PLC0415

    predicted = probabilities.argmax(axis=1)
    f1 = f1_score(labels, predicted, labels=[0, 1, 2], average=None, zero_division=0)
    with warnings.catch_warnings():
        # A short slice may lack a class; the score is still the one defined for it.
        warnings.simplefilter("ignore", UserWarning)
        balanced = float(balanced_accuracy_score(labels, predicted))
    return {
        "log_loss": float(log_loss(labels, probabilities, labels=[0, 1, 2])),
        "balanced_accuracy": balanced,
        "f1": {name: float(score) for name, score in zip(CLASS_ORDER, f1, strict=True)},
        "samples": int(labels.shape[0]),
    }


def _class_prior(labels: IntArray) -> FloatArray:
    counts = np.bincount(labels, minlength=len(CLASS_ORDER)).astype(np.float64)
    return np.asarray((counts + 1.0) / (counts.sum() + len(CLASS_ORDER)), dtype=np.float64)


def _prior_log_loss(prior: FloatArray, labels: IntArray) -> float:
    return float(-np.mean(np.log(np.clip(prior[labels], 1e-12, 1.0))))


def _model_log_loss(probabilities: FloatArray, labels: IntArray) -> float:
    picked = probabilities[np.arange(labels.shape[0]), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def _psi_reference(features: FloatArray, names: list[str], bins: int = 10) -> dict[str, Any]:
    """Return per-feature decile edges and proportions of the training rows (drift baseline)."""
    reference: dict[str, Any] = {}
    for column, name in enumerate(names):
        values = features[:, column]
        edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        reference[name] = {
            "edges": [float(x) for x in edges],
            "proportions": [float(x) for x in counts / counts.sum()],
        }
    return reference


def _scored(
    dataset: _Dataset,
    options: TrainingOptions,
    probabilities: FloatArray,
    samples: IntArray,
) -> tuple[dict[str, Any], FloatArray]:
    """Return the classification and plan-trading metrics of predictions, and bar returns."""
    section = classification_metrics(probabilities, dataset.labels[samples])
    section["trading"], returns = plan_trading_result(
        dataset.bars,
        dataset.sample_rows[samples],
        probabilities,
        options.plan,
        commission=options.commission,
        bars_per_year=periods_per_year(options.timeframe),
    )
    return section, returns


def _section(
    dataset: _Dataset,
    options: TrainingOptions,
    probabilities: FloatArray,
    samples: IntArray,
) -> dict[str, Any]:
    """Return the classification and plan-trading metrics of predictions on ``samples``."""
    return _scored(dataset, options, probabilities, samples)[0]


def _baseline_options(options: TrainingOptions) -> TrainingOptions | None:
    """Return the single-model baseline's options, or None when the model is that baseline."""
    if options.algorithm == BASELINE_ALGORITHM and not options.per_regime:
        return None
    return replace(options, algorithm=BASELINE_ALGORITHM, per_regime=False)


def _walk_forward(
    dataset: _Dataset, options: TrainingOptions, embargo: int, prior: FloatArray
) -> tuple[dict[str, Any], dict[str, str], dict[str, FloatArray]]:
    """Score fresh models and the baselines on each test block; choose model or prior per regime."""
    starts, ends = dataset.sample_rows, dataset.label_ends
    baseline = _baseline_options(options)
    model: list[FloatArray] = []
    single: list[FloatArray] = []
    class_prior: list[FloatArray] = []
    tested: list[IntArray] = []
    regimes: list[IntArray] = []
    for fold in purged_walk_forward_folds(
        starts,
        ends,
        folds=options.folds,
        embargo=embargo,
        validation_fraction=options.validation_fraction,
    ):
        fold_model = _fit_fold(dataset, options, fold.train, fold.validation)
        design = fold_model.design
        model.append(fold_model.fitted.predictor.probabilities(design[fold.test]))
        if baseline is not None:
            fitted = _fit_model(dataset, design, baseline, fold_model.rows)
            single.append(fitted.predictor.probabilities(design[fold.test]))
        fold_prior = _class_prior(dataset.labels[fold.train])
        class_prior.append(np.tile(fold_prior, (fold.test.size, 1)))
        tested.append(fold.test)
        regimes.append(design[fold.test][:, -len(REGIMES) :].argmax(axis=1))
    if not tested:
        raise ValueError("too few labelled bars for a walk-forward evaluation")
    samples = np.concatenate(tested)
    probabilities = np.vstack(model)
    labels = dataset.labels[samples]
    section, model_returns = _scored(dataset, options, probabilities, samples)
    returns = {"model": model_returns}
    evaluation: dict[str, Any] = {
        "walk_forward": section,
        "baselines": {
            "class_prior": {
                "walk_forward": _section(dataset, options, np.vstack(class_prior), samples)
            },
        },
    }
    if baseline is not None:
        single_section, returns["single_model"] = _scored(
            dataset, options, np.vstack(single), samples
        )
        evaluation["baselines"]["single_model"] = {
            "algorithm": BASELINE_ALGORITHM,
            "walk_forward": single_section,
        }
    regime_of = np.concatenate(regimes)
    regime_policy = dict.fromkeys(REGIMES, "model")
    per_regime: dict[str, Any] = {}
    for index, name in enumerate(REGIMES):
        mask = regime_of == index
        if mask.sum() < 30:
            continue  # too few samples to overrule the model
        model_loss = _model_log_loss(probabilities[mask], labels[mask])
        prior_loss = _prior_log_loss(prior, labels[mask])
        regime_policy[name] = "model" if model_loss <= prior_loss else "prior"
        per_regime[name] = {
            "samples": int(mask.sum()),
            "model_log_loss": model_loss,
            "prior_log_loss": prior_loss,
            "choice": regime_policy[name],
        }
    evaluation["per_regime"] = per_regime
    return evaluation, regime_policy, returns


def _model_name(options: TrainingOptions) -> str:
    return f"{options.kind}_triple_barrier"


def _package(fitted: _Fitted) -> tuple[str, bytes, dict[str, Any]]:
    """Return (format, artifact, extras) of a fitted model: native booster or bundle."""
    if fitted.composition["kind"] == "booster":
        (booster,) = fitted.boosters.values()
        artifact_format, artifact = booster.export(False)
        return artifact_format, artifact, {"calibration": fitted.composition["calibration"]}
    components = {name: booster.export(True) for name, booster in fitted.boosters.items()}
    return "bundle-json", make_bundle(fitted.composition, components), {}


def train_model(
    frame: pd.DataFrame,
    options: TrainingOptions,
    *,
    created_at: datetime,
    definition: FeatureSetDefinition = DEFAULT_FEATURES,
) -> TrainingResult:
    """Train, evaluate and package one model from OHLCV bars."""
    started = time.perf_counter()
    dataset = _prepare(frame, definition, options.barrier)
    starts, ends = dataset.sample_rows, dataset.label_ends
    embargo = options.barrier.max_horizon if options.embargo is None else options.embargo
    prior = _class_prior(dataset.labels)

    # The production model: everything but a final validation slice, purged like a fold.
    all_rows = np.arange(starts.shape[0], dtype=np.int64)
    split = round(starts.shape[0] * (1.0 - options.validation_fraction))
    validation_rows = all_rows[split:]
    train_rows = all_rows[:split]
    train_rows = train_rows[ends[train_rows] < starts[validation_rows[0]] - embargo]
    if train_rows.size == 0 or validation_rows.size == 0:
        raise ValueError("too few labelled bars to train and validate a model")
    production = _fit_fold(dataset, options, train_rows, validation_rows)
    calibrating = production.rows.calibrating
    validation_probabilities = production.fitted.predictor.probabilities(
        production.design[calibrating]
    )
    validation_prior = np.tile(_class_prior(dataset.labels[train_rows]), (calibrating.size, 1))
    metrics: dict[str, Any] = {
        "kind": options.kind,
        "trade_plan": options.plan.model_dump(),
        "validation": _section(dataset, options, validation_probabilities, calibrating),
        "best_iteration": production.fitted.best_iteration,
        "class_counts": {
            name: int((dataset.labels == index).sum()) for index, name in enumerate(CLASS_ORDER)
        },
        "baselines": {
            "class_prior": {"validation": _section(dataset, options, validation_prior, calibrating)}
        },
    }
    baseline = _baseline_options(options)
    if baseline is not None:
        single = _fit_model(dataset, production.design, baseline, production.rows)
        metrics["baselines"]["single_model"] = {
            "algorithm": BASELINE_ALGORITHM,
            "validation": _section(
                dataset,
                options,
                single.predictor.probabilities(production.design[calibrating]),
                calibrating,
            ),
        }
    if options.per_regime:
        metrics["regime_models"] = {
            name: "own" if name in production.fitted.composition["regimes"] else "fallback"
            for name in REGIMES
        }
    regime_policy = dict.fromkeys(REGIMES, "model")
    out_of_sample: dict[str, FloatArray] = {}
    if options.evaluate:
        evaluation, regime_policy, out_of_sample = _walk_forward(dataset, options, embargo, prior)
        for name, section in evaluation.pop("baselines").items():
            metrics["baselines"].setdefault(name, {}).update(section)
        metrics.update(evaluation)
        metrics["reference_log_loss"] = metrics["walk_forward"]["log_loss"]
    else:
        metrics["reference_log_loss"] = metrics["validation"]["log_loss"]

    feature_names = [*definition.names, *REGIME_FEATURES]
    contributions = production.fitted.contributions(production.design[validation_rows])
    total = float(contributions.sum()) or 1.0
    importances = {
        name: float(value) / total for name, value in zip(feature_names, contributions, strict=True)
    }
    training_index = dataset.bars.index
    train_start = training_index[starts[train_rows[0]]].to_pydatetime()
    train_end = training_index[starts[train_rows[-1]]].to_pydatetime()
    data_end = training_index[-1].to_pydatetime()
    parameters = {
        **{key: value for key, value in asdict(options).items() if key != "plan"},
        "kind": options.kind,
        "trade_plan": options.plan.model_dump(),
        "embargo": embargo,
        "best_iteration": production.fitted.best_iteration,
    }
    data_sha256 = data_fingerprint(dataset.bars)
    digest = hashlib.sha256(
        json.dumps([data_sha256, parameters], sort_keys=True).encode("utf-8")
    ).hexdigest()[:8]
    model_id = (
        f"{options.symbol.lower()}-{options.timeframe}-{options.kind}-"
        f"{created_at:%Y%m%dT%H%M%S}-{digest}"
    )
    artifact_format, artifact, packaged = _package(production.fitted)
    design_train = production.design[train_rows]
    metrics["training_seconds"] = time.perf_counter() - started
    extras = {
        **packaged,
        "class_prior": [float(x) for x in prior],
        "regime_model": production.regime_model.to_json(),
        "regime_policy": regime_policy,
        "psi_reference": _psi_reference(design_train, feature_names),
        "trade_plan": options.plan.model_dump(),
        "reference_log_loss": metrics["reference_log_loss"],
        "data_end": data_end.isoformat(),
    }
    record = ModelRecord(
        model_id=model_id,
        name=_model_name(options),
        algorithm=options.kind,
        symbol=options.symbol,
        timeframe=options.timeframe,
        feature_set_version=definition.version,
        feature_names=feature_names,
        training_start=train_start,
        training_end=train_end,
        data_sha256=data_sha256,
        parameters=parameters,
        metrics=metrics,
        importances=importances,
        artifact_format=artifact_format,
        artifact=artifact,
        created_at=created_at,
        extras=extras,
    )
    return TrainingResult(record=record, metrics=metrics, out_of_sample_returns=out_of_sample)
