"""The inference service on the in-memory bus and SQLite: predictions, hot reload, no model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import SystemClock
from tai_events import AlertRaised, Message
from tai_events.codec import Envelope
from tai_events.market import BarClosed, Timeframe
from tai_events.ml import (
    ModelPromoted,
    ModelRetrainingRequested,
    PredictedClass,
    PredictionMade,
    RetrainingTrigger,
)
from tai_events.topics import ALL_ALERTS, ALL_PREDICTIONS, ALL_RETRAINING_REQUESTS
from tai_inference.app import InferenceApp, create_app
from tai_inference.config import InferenceSettings
from tai_inference.engine import ServingState
from tai_inference.registry import promote_model, register_model
from tai_inference.training import TrainingResult
from tai_quant.features import DEFAULT_FEATURES
from tai_store import Store
from tai_store.ml_repository import MlModelRepository
from tai_telemetry.metrics import Telemetry

WARM = DEFAULT_FEATURES.warmup_period


@dataclass
class Harness:
    bus: InMemoryBus
    store: Store
    app: InferenceApp
    telemetry: Telemetry
    clock: SystemClock
    predictions: list[PredictionMade]
    alerts: list[AlertRaised]
    retraining: list[ModelRetrainingRequested]

    async def publish_bars(self, bars: list[BarClosed]) -> None:
        for bar in bars:
            await self.bus.publish(bar)
            await self.bus.drain()


def bar_events(frame: pd.DataFrame) -> list[BarClosed]:
    return [
        BarClosed(
            symbol="EURUSD",
            timeframe=Timeframe.H1,
            opened_at=timestamp.to_pydatetime(),
            closed_at=(timestamp + pd.Timedelta(hours=1)).to_pydatetime(),
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=row.volume,
            source="test",
        )
        for timestamp, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    ]


async def make_harness(tmp_path: Path, **settings: object) -> Harness:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite'}"
    clock = SystemClock()
    telemetry = Telemetry(service="inference")
    store = Store(url)
    await store.migrate()
    bus = InMemoryBus("test", clock=clock, telemetry=telemetry, deterministic=True)
    predictions: list[PredictionMade] = []
    alerts: list[AlertRaised] = []
    retraining: list[ModelRetrainingRequested] = []

    async def collect(envelope: Envelope[Message]) -> None:
        message = envelope.message
        if isinstance(message, PredictionMade):
            predictions.append(message)
        elif isinstance(message, AlertRaised):
            alerts.append(message)
        elif isinstance(message, ModelRetrainingRequested):
            retraining.append(message)

    await bus.subscribe(
        Subscription(
            queue="test.inference.observer",
            bindings=[
                Binding(ALL_PREDICTIONS),
                Binding(ALL_ALERTS),
                Binding(ALL_RETRAINING_REQUESTS),
            ],
            handler=collect,
        )
    )
    await bus.start()
    app = create_app(
        InferenceSettings(database_url=url, amqp_url="memory://", **settings),  # type: ignore[arg-type]
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
    )
    return Harness(bus, store, app, telemetry, clock, predictions, alerts, retraining)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    built = await make_harness(tmp_path)
    yield built
    await built.app.stop()
    await built.bus.close()
    await built.store.close()


async def test_without_a_model_the_service_publishes_nothing_and_says_so(
    harness: Harness, eurusd_bars: pd.DataFrame
) -> None:
    # Act
    await harness.app.start()
    await harness.publish_bars(bar_events(eurusd_bars.iloc[2500 : 2500 + WARM + 20]))

    # Assert
    assert harness.predictions == []
    assert not harness.app.ready()
    status = harness.app.status()
    assert [(item.symbol, item.state) for item in status] == [("EURUSD", ServingState.NO_MODEL)]
    assert status[0].bars_seen == WARM + 20
    assert b'tai_inference_serving_state{symbol="EURUSD"} 0.0' in harness.telemetry.render_metrics()


async def test_production_model_publishes_predictions_after_warm_up_only(
    harness: Harness, xgboost_model: TrainingResult, eurusd_bars: pd.DataFrame
) -> None:
    # Arrange
    record = xgboost_model.record
    await register_model(harness.store, record)
    await promote_model(
        harness.store, None, record.model_id, clock=harness.clock, promoted_by="test"
    )
    await harness.app.start()
    bars = bar_events(eurusd_bars.iloc[2500 : 2500 + WARM + 30])

    # Act: up to one bar short of warm-up, then the rest
    await harness.publish_bars(bars[: WARM - 1])
    warming = harness.app.status()[0]
    await harness.publish_bars(bars[WARM - 1 :])

    # Assert
    assert warming.state is ServingState.WARMING_UP
    assert harness.app.ready()
    assert harness.app.status()[0].state is ServingState.SERVING
    assert len(harness.predictions) == 31
    first = harness.predictions[0]
    assert first.bar_closed_at == bars[WARM - 1].closed_at
    assert first.symbol == "EURUSD"
    assert first.model_id == record.model_id
    assert first.feature_set_version == DEFAULT_FEATURES.version
    assert set(first.probabilities) == set(PredictedClass)
    assert first.regime in {"trend", "range", "volatile"}
    metrics = harness.telemetry.render_metrics().decode()
    labels = (
        f'algorithm="xgboost",feature_set_version="{DEFAULT_FEATURES.version}",'
        f'model_id="{record.model_id}",symbol="EURUSD"'
    )
    assert f"tai_model_version_info{{{labels}}} 1.0" in metrics
    assert 'tai_prediction_latency_seconds_count{symbol="EURUSD"} 31.0' in metrics


async def test_promotion_hot_reloads_without_dropping_or_reordering_predictions(
    harness: Harness,
    xgboost_model: TrainingResult,
    second_xgboost_model: TrainingResult,
    eurusd_bars: pd.DataFrame,
) -> None:
    # Arrange: model A serves; model B is registered as a candidate
    first, second = xgboost_model.record, second_xgboost_model.record
    second = replace(second, model_id=second.model_id + "-b")
    await register_model(harness.store, first)
    await register_model(harness.store, second)
    await promote_model(harness.store, None, first.model_id, clock=harness.clock, promoted_by="t")
    await harness.app.start()
    bars = bar_events(eurusd_bars.iloc[2500 : 2500 + WARM + 60])

    # Act: promote B on the bus mid-stream, interleaved with bars not yet delivered
    for bar in bars[: WARM + 20]:
        await harness.bus.publish(bar)
    await promote_model(
        harness.store, harness.bus, second.model_id, clock=harness.clock, promoted_by="t"
    )
    for bar in bars[WARM + 20 :]:
        await harness.bus.publish(bar)
    await harness.bus.drain()

    # Assert: one prediction per bar after warm-up, in bar order, A then B, never back
    closes = [prediction.bar_closed_at for prediction in harness.predictions]
    assert closes == [bar.closed_at for bar in bars[WARM - 1 :]]
    models = [prediction.model_id for prediction in harness.predictions]
    switch = models.index(second.model_id)
    assert switch == 21  # the first bar published after the promotion
    assert set(models[:switch]) == {first.model_id}
    assert set(models[switch:]) == {second.model_id}
    async with harness.store.transaction() as unit:
        registry = MlModelRepository(unit.session)
        assert (await registry.get(first.model_id)).stage == "archived"  # type: ignore[union-attr]
        assert (await registry.get(second.model_id)).stage == "production"  # type: ignore[union-attr]


async def test_promotion_whose_artifact_hash_differs_is_refused_and_alerted(
    harness: Harness, xgboost_model: TrainingResult, eurusd_bars: pd.DataFrame
) -> None:
    # Arrange
    record = xgboost_model.record
    await register_model(harness.store, record)
    await harness.app.start()

    # Act: a promotion event naming another artifact than the registry holds
    await harness.bus.publish(
        ModelPromoted(
            model_id=record.model_id,
            model_name=record.name,
            symbol="EURUSD",
            timeframe=Timeframe.H1,
            artifact_sha256="0" * 64,
            promoted_at=harness.clock.now(),
            promoted_by="intruder",
        )
    )
    await harness.bus.drain()
    await harness.publish_bars(bar_events(eurusd_bars.iloc[2500 : 2500 + WARM + 5]))

    # Assert
    assert harness.app.engine.model("EURUSD") is None
    assert harness.predictions == []
    assert [alert.code for alert in harness.alerts] == ["model_reload_refused"]


async def test_drift_raises_a_warning_once_and_marks_the_model_for_retraining(
    tmp_path: Path, xgboost_model: TrainingResult, eurusd_bars: pd.DataFrame
) -> None:
    # Arrange: a tiny PSI threshold that any live window crosses
    harness = await make_harness(
        tmp_path,
        psi_threshold=1e-6,
        drift_window=50,
        drift_check_every=10,
        max_model_age_hours=0,  # the bars are months after the training window
    )
    record = xgboost_model.record
    await register_model(harness.store, record)
    await promote_model(harness.store, None, record.model_id, clock=harness.clock, promoted_by="t")
    await harness.app.start()
    try:
        # Act
        await harness.publish_bars(bar_events(eurusd_bars.iloc[3000 : 3000 + WARM + 120]))

        # Assert
        drift = [alert for alert in harness.alerts if alert.code == "feature_drift"]
        assert len(drift) == 1
        assert drift[0].severity.value == "warning"
        assert drift[0].details["model_id"] == record.model_id
        async with harness.store.transaction() as unit:
            stored = await MlModelRepository(unit.session).get(record.model_id)
        assert stored is not None
        assert stored.needs_retraining
        assert stored.retraining_reason is not None
        assert stored.retraining_reason.startswith("feature_drift")
        (request,) = harness.retraining
        assert request.trigger is RetrainingTrigger.FEATURE_DRIFT
        assert request.model_id == record.model_id
        assert (request.symbol, request.timeframe) == ("EURUSD", Timeframe.H1)
    finally:
        await harness.app.stop()
        await harness.bus.close()
        await harness.store.close()


async def test_redelivered_bar_is_not_predicted_twice(
    harness: Harness, xgboost_model: TrainingResult, eurusd_bars: pd.DataFrame
) -> None:
    record = xgboost_model.record
    await register_model(harness.store, record)
    await promote_model(harness.store, None, record.model_id, clock=harness.clock, promoted_by="t")
    await harness.app.start()
    bars = bar_events(eurusd_bars.iloc[2500 : 2500 + WARM + 3])
    await harness.publish_bars(bars)
    await harness.publish_bars(bars[-2:])
    assert len(harness.predictions) == 4


async def test_model_older_than_the_age_limit_predicts_nothing_and_asks_for_retraining(
    tmp_path: Path, xgboost_model: TrainingResult, eurusd_bars: pd.DataFrame
) -> None:
    # Arrange: the model learnt from bars up to 2,500; bars 3,000+ are weeks later
    harness = await make_harness(tmp_path, max_model_age_hours=48)
    record = xgboost_model.record
    await register_model(harness.store, record)
    await promote_model(harness.store, None, record.model_id, clock=harness.clock, promoted_by="t")
    await harness.app.start()
    try:
        # Act
        await harness.publish_bars(bar_events(eurusd_bars.iloc[3000 : 3000 + WARM + 30]))

        # Assert: no prediction, one alert, one retraining request, flagged, state expired
        assert harness.predictions == []
        expired = [alert for alert in harness.alerts if alert.code == "model_expired"]
        assert len(expired) == 1
        assert "limit 48 h" in expired[0].message
        (request,) = harness.retraining
        assert request.trigger is RetrainingTrigger.MODEL_EXPIRED
        assert harness.app.status()[0].state is ServingState.EXPIRED
        assert not harness.app.ready()
        async with harness.store.transaction() as unit:
            stored = await MlModelRepository(unit.session).get(record.model_id)
        assert stored is not None
        assert stored.needs_retraining
        assert stored.retraining_reason is not None
        assert stored.retraining_reason.startswith("model_expired")
    finally:
        await harness.app.stop()
        await harness.bus.close()
        await harness.store.close()


async def test_model_within_the_age_limit_predicts_with_its_trade_plan(
    harness: Harness, xgboost_model: TrainingResult, eurusd_bars: pd.DataFrame
) -> None:
    # Arrange: bars right after the training data, inside the default 14-day limit
    record = xgboost_model.record
    await register_model(harness.store, record)
    await promote_model(harness.store, None, record.model_id, clock=harness.clock, promoted_by="t")
    await harness.app.start()

    # Act
    await harness.publish_bars(bar_events(eurusd_bars.iloc[2500 : 2500 + WARM + 5]))

    # Assert
    assert harness.predictions
    assert {prediction.plan for prediction in harness.predictions} == {record.trade_plan()}
    assert harness.retraining == []
