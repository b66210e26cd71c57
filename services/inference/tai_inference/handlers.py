"""Bus <-> inference glue: bars to predictions, promotions to hot reloads, drift to retraining.

A drift finding or an expired model marks the model for retraining in the registry, raises an
``alert.warning`` and publishes ``ModelRetrainingRequested`` (once per model and trigger),
which the optimizer acts on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_events.alerts import AlertRaised, Severity
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.headers import MessageHeaders
from tai_events.market import BarClosed, Timeframe
from tai_events.ml import ModelPromoted, ModelRetrainingRequested, RetrainingTrigger
from tai_inference.drift import DriftFinding
from tai_inference.engine import IncompatibleModelError, InferenceEngine
from tai_inference.metrics import SERVING_STATE_VALUES, InferenceMetrics
from tai_inference.model import ServingModel
from tai_store.database import Store
from tai_store.ml_repository import ArtifactIntegrityError, MlModelRepository
from tai_telemetry.logging import get_logger

SOURCE = "inference"
log = get_logger(SOURCE)


@dataclass
class InferenceContext:
    """What the inference handlers need."""

    engine: InferenceEngine
    bus: MessageBus
    store: Store
    clock: Clock
    metrics: InferenceMetrics
    expired_models: set[str] = field(default_factory=set)
    """Models whose expiry was already reported."""


def serve_model(context: InferenceContext, symbol: str, model: ServingModel) -> None:
    """Serve a loaded model for a symbol and update the model-version metric."""
    previous = context.engine.model(symbol)
    context.engine.set_model(symbol, model)
    if previous is not None:
        context.metrics.model_version.remove(
            symbol, previous.model_id, previous.algorithm, previous.feature_set_version
        )
    context.metrics.model_version.labels(
        symbol, model.model_id, model.algorithm, model.feature_set_version
    ).set(1)
    report_state(context, symbol)


def report_state(context: InferenceContext, symbol: str) -> None:
    """Publish a symbol's serving state as a metric."""
    state = context.engine.status(symbol).state
    context.metrics.serving_state.labels(symbol).set(SERVING_STATE_VALUES[state.value])


async def raise_alert(
    context: InferenceContext,
    *,
    code: str,
    message: str,
    details: dict[str, str],
    cause: MessageHeaders | None,
) -> None:
    """Publish an ``alert.warning`` from the inference service."""
    await context.bus.publish(
        AlertRaised(
            severity=Severity.WARNING,
            source=SOURCE,
            code=code,
            message=message,
            details=details,
            raised_at=context.clock.now(),
        ),
        cause=cause,
    )


async def request_retraining(
    context: InferenceContext,
    model: ServingModel,
    bar: BarClosed,
    finding: DriftFinding,
    cause: MessageHeaders,
) -> None:
    """Mark the model for retraining, alert, and ask the optimizer to retrain it."""
    async with context.store.transaction() as unit:
        await MlModelRepository(unit.session).mark_for_retraining(
            model.model_id, f"{finding.code}: {finding.message}"[:2000]
        )
    context.metrics.drift_alerts.labels(bar.symbol, finding.code).inc()
    details = {"model_id": model.model_id, "symbol": bar.symbol, **finding.details}
    await raise_alert(
        context,
        code=finding.code,
        message=(
            f"model {model.model_id} on {bar.symbol}: {finding.message}; marked for retraining"
        )[:2000],
        details=details,
        cause=cause,
    )
    await context.bus.publish(
        ModelRetrainingRequested(
            model_id=model.model_id,
            symbol=bar.symbol,
            timeframe=Timeframe(bar.timeframe),
            trigger=RetrainingTrigger(finding.code),
            reason=finding.message[:2000],
            details=details,
            requested_at=context.clock.now(),
            requested_by=SOURCE,
        ),
        cause=cause,
    )


def expiry_finding(model: ServingModel, bar: BarClosed, excess: timedelta) -> DriftFinding:
    """Describe a model too old to predict the bar."""
    age = bar.closed_at - model.data_end if model.data_end is not None else excess
    limit = age - excess
    return DriftFinding(
        code=RetrainingTrigger.MODEL_EXPIRED.value,
        message=(
            f"model is {age.total_seconds() / 3600:.0f} h past its newest training bar "
            f"(limit {limit.total_seconds() / 3600:.0f} h): no predictions until a newer "
            "model is promoted"
        ),
        details={
            "age_hours": f"{age.total_seconds() / 3600:.1f}",
            "max_age_hours": f"{limit.total_seconds() / 3600:.1f}",
            "data_end": model.data_end.isoformat() if model.data_end else "",
        },
    )


async def on_bar_closed(envelope: Envelope[Message], context: InferenceContext) -> None:
    """Predict on a closed bar; publish the prediction and any drift alerts."""
    bar = envelope.message
    if not isinstance(bar, BarClosed) or context.engine.is_stale(bar):
        return  # a redelivered bar: its prediction was already published
    started = time.perf_counter()
    outcome = context.engine.on_bar(bar)
    elapsed = time.perf_counter() - started
    report_state(context, bar.symbol)
    model = outcome.model
    if outcome.expired_by is not None and model is not None:
        if model.model_id not in context.expired_models:
            # Said once per model: the state metric and the registry flag keep saying it.
            context.expired_models.add(model.model_id)
            log.warning("model expired", model_id=model.model_id, symbol=bar.symbol)
            finding = expiry_finding(model, bar, outcome.expired_by)
            await request_retraining(context, model, bar, finding, envelope.headers)
        return
    prediction = outcome.prediction
    if prediction is None:
        return
    context.metrics.prediction_latency.labels(bar.symbol).observe(elapsed)
    await context.bus.publish(prediction, cause=envelope.headers)
    context.metrics.predictions.labels(bar.symbol, prediction.predicted_class.value).inc()
    if model is not None:
        for finding in outcome.findings:
            await request_retraining(context, model, bar, finding, envelope.headers)


async def load_production_model(
    context: InferenceContext, symbol: str, timeframe: str
) -> ServingModel | None:
    """Load the production model of a symbol from the registry (None when there is none)."""
    async with context.store.transaction() as unit:
        record = await MlModelRepository(unit.session).production(symbol, timeframe)
    if record is None:
        return None
    return ServingModel.from_record(record)


async def on_model_promoted(envelope: Envelope[Message], context: InferenceContext) -> None:
    """Hot-reload the promoted model; refuse (and alert) when it cannot be trusted or served."""
    promoted = envelope.message
    if not isinstance(promoted, ModelPromoted):
        return
    current = context.engine.model(promoted.symbol)
    if current is not None and current.model_id == promoted.model_id:
        return  # already serving it (redelivery)
    async with context.store.transaction() as unit:
        record = await MlModelRepository(unit.session).get(promoted.model_id)
    reason: str | None = None
    model: ServingModel | None = None
    if record is None:
        reason = "model is not in the registry"
    elif record.artifact_sha256 != promoted.artifact_sha256:
        reason = "artifact SHA-256 differs from the promotion's"
    else:
        try:
            model = ServingModel.from_record(record)
            serve_model(context, promoted.symbol, model)
        except (ArtifactIntegrityError, IncompatibleModelError, ValueError) as error:
            reason = str(error)
    if reason is not None or model is None:
        context.metrics.reloads.labels(promoted.symbol, "refused").inc()
        log.warning("model reload refused", model_id=promoted.model_id, reason=reason)
        await raise_alert(
            context,
            code="model_reload_refused",
            message=f"model {promoted.model_id} for {promoted.symbol} not loaded: {reason}",
            details={"model_id": promoted.model_id, "symbol": promoted.symbol},
            cause=envelope.headers,
        )
        return
    context.metrics.reloads.labels(promoted.symbol, "loaded").inc()
    log.info("model hot-reloaded", model_id=model.model_id, symbol=promoted.symbol)
