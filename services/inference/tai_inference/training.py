"""Train, evaluate and package a classifier: features -> triple-barrier class probabilities.

The pipeline, all on data strictly in time order:

1. features (:mod:`tai_quant.features`, the same definition the service computes live) and
   triple-barrier labels;
2. purged + embargoed walk-forward folds; per fold, the regime HMM is fitted on the fold's
   training rows only and its forward-filtered probabilities join the features;
3. XGBoost or LightGBM with balanced class weights, early-stopped on the first half of the
   fold's validation set only, calibrated (scikit-learn multinomial logistic regression on
   log-probabilities) on its second half, and scored on the untouched test block;
4. the production model is fitted the same way on all data but a final validation slice; the
   out-of-sample predictions decide, per regime, whether the model or the class prior serves
   (the per-regime model choice), and the booster's own ``pred_contribs`` / ``pred_contrib``
   give SHAP importances stored with the model.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from tai_inference.model import CLASS_ORDER, Calibration
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
    triple_barrier_labels,
)
from tai_store.ml_repository import ModelRecord

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Algorithm = Literal["xgboost", "lightgbm"]
ALGORITHMS: tuple[Algorithm, ...] = ("xgboost", "lightgbm")
ARTIFACT_FORMAT = {"xgboost": "xgboost-ubj", "lightgbm": "lightgbm-text"}


@dataclass(frozen=True)
class TrainingOptions:
    """How to train; defaults train the demo model on hourly bars in seconds."""

    algorithm: Algorithm = "xgboost"
    symbol: str = "EURUSD"
    timeframe: str = "1h"
    barrier: TripleBarrier = field(
        default_factory=lambda: TripleBarrier(take_profit=2.0, stop_loss=2.0, max_horizon=12)
    )
    folds: int = 3
    embargo: int | None = None
    """Bars purged ahead of each test block; None = the barrier's maximum horizon."""
    validation_fraction: float = 0.2
    max_rounds: int = 400
    early_stopping_rounds: int = 30
    learning_rate: float = 0.05
    max_depth: int = 4
    seed: int = 7
    threads: int = 1
    """Booster threads; 1 is fastest for these small data sets on a shared machine."""
    signal_threshold: float = 0.45
    """Minimum calibrated probability of LONG/SHORT for the trading result to take a side."""
    commission: float = 0.0001
    """Cost per unit of position change (fraction of notional) in the trading result."""
    evaluate: bool = True
    """Run the walk-forward evaluation (off for the fast embedded demo model)."""

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")


@dataclass(frozen=True)
class TrainingResult:
    """The packaged model and the metrics it was judged by."""

    record: ModelRecord
    metrics: dict[str, Any]


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


@dataclass
class _Fitted:
    artifact: bytes
    raw_probabilities: Any  # Callable[[FloatArray], FloatArray]
    contributions: Any  # Callable[[FloatArray], FloatArray] -> (n, features) mean |contrib|
    best_iteration: int


def _fit_xgboost(
    options: TrainingOptions,
    x_train: FloatArray,
    y_train: IntArray,
    x_stop: FloatArray,
    y_stop: IntArray,
) -> _Fitted:
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
    artifact = bytes(booster.save_raw(raw_format="ubj"))

    def raw(rows: FloatArray) -> FloatArray:
        return np.asarray(booster.inplace_predict(rows), dtype=np.float64).reshape(-1, 3)

    def contributions(rows: FloatArray) -> FloatArray:
        values = np.asarray(booster.predict(xgboost.DMatrix(rows), pred_contribs=True))
        # (n, classes, features + bias): mean |contribution| over rows and classes, no bias
        return np.asarray(np.abs(values[:, :, :-1]).mean(axis=(0, 1)), dtype=np.float64)

    return _Fitted(artifact, raw, contributions, best)


def _fit_lightgbm(
    options: TrainingOptions,
    x_train: FloatArray,
    y_train: IntArray,
    x_stop: FloatArray,
    y_stop: IntArray,
) -> _Fitted:
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
    artifact = text.encode("utf-8")
    serving = lightgbm.Booster(model_str=text)

    def raw(rows: FloatArray) -> FloatArray:
        return np.asarray(serving.predict(rows), dtype=np.float64).reshape(-1, 3)

    def contributions(rows: FloatArray) -> FloatArray:
        values = np.asarray(serving.predict(rows, pred_contrib=True), dtype=np.float64)
        width = rows.shape[1] + 1
        per_class = values.reshape(rows.shape[0], len(CLASS_ORDER), width)[:, :, :-1]
        return np.asarray(np.abs(per_class).mean(axis=(0, 1)), dtype=np.float64)

    return _Fitted(artifact, raw, contributions, best)


def _fit_calibration(raw: FloatArray, labels: IntArray) -> Calibration:
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    present = np.unique(labels)
    if present.size < len(CLASS_ORDER):
        # Too few classes to fit a multinomial map: keep the booster's own probabilities.
        identity = tuple(
            tuple(1.0 if row == column else 0.0 for column in range(3)) for row in range(3)
        )
        return Calibration(coefficients=identity, intercepts=(0.0, 0.0, 0.0))
    regression = LogisticRegression(C=1.0, max_iter=1000)
    regression.fit(np.log(np.clip(raw, 1e-9, 1.0)), labels)
    return Calibration(
        coefficients=tuple(tuple(float(x) for x in row) for row in regression.coef_),
        intercepts=tuple(float(x) for x in regression.intercept_),
    )


@dataclass
class _FoldModel:
    fitted: _Fitted
    calibration: Calibration
    regime_model: RegimeModel
    regime_probabilities: FloatArray
    design: FloatArray
    calibration_rows: IntArray


def _fit_fold(
    dataset: _Dataset, options: TrainingOptions, train: IntArray, validation: IntArray
) -> _FoldModel:
    regime_model, regime_probabilities = _regime_probabilities(dataset, train, options.seed)
    design = _design(dataset, regime_probabilities)
    half = max(1, validation.size // 2)
    stopping, calibrating = validation[:half], validation[half:]
    if calibrating.size == 0:
        calibrating = stopping
    fit = _fit_xgboost if options.algorithm == "xgboost" else _fit_lightgbm
    fitted = fit(
        options, design[train], dataset.labels[train], design[stopping], dataset.labels[stopping]
    )
    calibration = _fit_calibration(
        fitted.raw_probabilities(design[calibrating]), dataset.labels[calibrating]
    )
    return _FoldModel(fitted, calibration, regime_model, regime_probabilities, design, calibrating)


def periods_per_year(timeframe: str) -> float:
    """Return bars per year of a timeframe on a 5-day, 24-hour market (FX)."""
    units = {"m": 60.0, "h": 3600.0, "d": 86400.0}
    seconds = float(timeframe[:-1]) * units[timeframe[-1]]
    return 260.0 * 86400.0 / seconds


def trading_result(
    probabilities: FloatArray,
    closes: FloatArray,
    next_closes: FloatArray,
    *,
    threshold: float,
    commission: float,
    bars_per_year: float,
) -> dict[str, float]:
    """Return the result of holding each bar's signal for one bar (long, short or flat)."""
    predicted = probabilities.argmax(axis=1)
    long_index, short_index = CLASS_ORDER.index("LONG"), CLASS_ORDER.index("SHORT")
    position = np.zeros(predicted.shape[0])
    position[(predicted == long_index) & (probabilities[:, long_index] >= threshold)] = 1.0
    position[(predicted == short_index) & (probabilities[:, short_index] >= threshold)] = -1.0
    turnover = np.abs(np.diff(np.concatenate([[0.0], position])))
    returns = position * (next_closes / closes - 1.0) - commission * turnover
    equity = np.cumprod(1.0 + returns)
    deviation = float(returns.std(ddof=1)) if returns.size > 1 else 0.0
    sharpe = float(returns.mean()) / deviation * math.sqrt(bars_per_year) if deviation else 0.0
    peak = np.maximum.accumulate(equity) if equity.size else equity
    drawdown = float(((peak - equity) / peak).max()) if equity.size else 0.0
    active = position != 0.0
    wins = (returns > 0.0) & active
    return {
        "total_return_pct": float(equity[-1] - 1.0) * 100.0 if equity.size else 0.0,
        "sharpe": sharpe,
        "max_drawdown_pct": drawdown * 100.0,
        "exposure_pct": float(active.mean()) * 100.0 if active.size else 0.0,
        "position_changes": float((turnover > 0).sum()),
        "hit_rate_pct": float(wins.sum() / active.sum()) * 100.0 if active.any() else 0.0,
    }


def classification_metrics(probabilities: FloatArray, labels: IntArray) -> dict[str, Any]:
    """Return log-loss, balanced accuracy and per-class F1 (scikit-learn)."""
    from sklearn.metrics import balanced_accuracy_score, f1_score, log_loss  # noqa: PLC0415

    predicted = probabilities.argmax(axis=1)
    f1 = f1_score(labels, predicted, labels=[0, 1, 2], average=None, zero_division=0)
    return {
        "log_loss": float(log_loss(labels, probabilities, labels=[0, 1, 2])),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "f1": {name: float(score) for name, score in zip(CLASS_ORDER, f1, strict=True)},
        "samples": int(labels.shape[0]),
    }


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


def _walk_forward(
    dataset: _Dataset, options: TrainingOptions, embargo: int, prior: FloatArray
) -> tuple[dict[str, Any], dict[str, str]]:
    """Score fresh models on each test block; choose model or prior per regime."""
    starts, ends = dataset.sample_rows, dataset.label_ends
    closes = dataset.bars["close"].to_numpy(np.float64)
    out_of_sample: list[tuple[FloatArray, IntArray, IntArray, IntArray]] = []
    for fold in purged_walk_forward_folds(
        starts,
        ends,
        folds=options.folds,
        embargo=embargo,
        validation_fraction=options.validation_fraction,
    ):
        fold_model = _fit_fold(dataset, options, fold.train, fold.validation)
        test_rows = fold.test[starts[fold.test] + 1 < closes.shape[0]]
        probabilities = fold_model.calibration.apply(
            fold_model.fitted.raw_probabilities(fold_model.design[test_rows])
        )
        regimes = fold_model.regime_probabilities[starts[test_rows]].argmax(axis=1)
        out_of_sample.append((probabilities, dataset.labels[test_rows], regimes, test_rows))
    regime_policy = dict.fromkeys(REGIMES, "model")
    if not out_of_sample:
        raise ValueError("too few labelled bars for a walk-forward evaluation")
    probabilities = np.vstack([part[0] for part in out_of_sample])
    labels = np.concatenate([part[1] for part in out_of_sample])
    regimes = np.concatenate([part[2] for part in out_of_sample])
    positions = starts[np.concatenate([part[3] for part in out_of_sample])]
    walk_forward = classification_metrics(probabilities, labels)
    walk_forward["trading"] = trading_result(
        probabilities,
        closes[positions],
        closes[positions + 1],
        threshold=options.signal_threshold,
        commission=options.commission,
        bars_per_year=periods_per_year(options.timeframe),
    )
    per_regime: dict[str, Any] = {}
    for index, name in enumerate(REGIMES):
        mask = regimes == index
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
    return {"walk_forward": walk_forward, "per_regime": per_regime}, regime_policy


def train_model(
    frame: pd.DataFrame,
    options: TrainingOptions,
    *,
    created_at: datetime,
    definition: FeatureSetDefinition = DEFAULT_FEATURES,
) -> TrainingResult:
    """Train, evaluate and package one model from OHLCV bars."""
    dataset = _prepare(frame, definition, options.barrier)
    starts, ends = dataset.sample_rows, dataset.label_ends
    embargo = options.barrier.max_horizon if options.embargo is None else options.embargo
    prior = np.bincount(dataset.labels, minlength=3).astype(np.float64)
    prior = (prior + 1.0) / (prior.sum() + 3.0)

    # The production model: everything but a final validation slice, purged like a fold.
    all_rows = np.arange(starts.shape[0], dtype=np.int64)
    split = round(starts.shape[0] * (1.0 - options.validation_fraction))
    validation_rows = all_rows[split:]
    train_rows = all_rows[:split]
    train_rows = train_rows[ends[train_rows] < starts[validation_rows[0]] - embargo]
    production = _fit_fold(dataset, options, train_rows, validation_rows)
    validation_probabilities = production.calibration.apply(
        production.fitted.raw_probabilities(production.design[production.calibration_rows])
    )
    validation_labels = dataset.labels[production.calibration_rows]

    metrics: dict[str, Any] = {
        "validation": classification_metrics(validation_probabilities, validation_labels),
        "best_iteration": production.fitted.best_iteration,
        "class_counts": {
            name: int((dataset.labels == index).sum()) for index, name in enumerate(CLASS_ORDER)
        },
    }
    regime_policy = dict.fromkeys(REGIMES, "model")
    if options.evaluate:
        evaluation, regime_policy = _walk_forward(dataset, options, embargo, prior)
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
    parameters = {
        **{key: value for key, value in asdict(options).items() if key != "barrier"},
        "barrier": asdict(options.barrier),
        "embargo": embargo,
        "best_iteration": production.fitted.best_iteration,
    }
    data_sha256 = data_fingerprint(dataset.bars)
    digest = hashlib.sha256(
        json.dumps([data_sha256, parameters], sort_keys=True).encode("utf-8")
    ).hexdigest()[:8]
    model_id = (
        f"{options.symbol.lower()}-{options.timeframe}-{options.algorithm}-"
        f"{created_at:%Y%m%dT%H%M%S}-{digest}"
    )
    design_train = production.design[train_rows]
    extras = {
        "class_prior": [float(x) for x in prior],
        "calibration": production.calibration.to_json(),
        "regime_model": production.regime_model.to_json(),
        "regime_policy": regime_policy,
        "psi_reference": _psi_reference(design_train, feature_names),
        "barrier": asdict(options.barrier),
        "reference_log_loss": metrics["reference_log_loss"],
    }
    record = ModelRecord(
        model_id=model_id,
        name=f"{options.algorithm}_triple_barrier",
        algorithm=options.algorithm,
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
        artifact_format=ARTIFACT_FORMAT[options.algorithm],
        artifact=production.fitted.artifact,
        created_at=created_at,
        extras=extras,
    )
    return TrainingResult(record=record, metrics=metrics)
