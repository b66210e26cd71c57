"""The inference service on a real RabbitMQ vhost and PostgreSQL database.

Bars in, ``ml.prediction.EURUSD`` out; a promotion published mid-stream hot-reloads the model
without dropping or reordering predictions; the registry round-trips on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pandas as pd
import pytest

from tai_bus import Binding, Subscription, create_bus
from tai_core.clock import SystemClock
from tai_events import Message
from tai_events.codec import Envelope
from tai_events.market import BarClosed, Timeframe
from tai_events.ml import PredictionMade
from tai_events.topics import ml_prediction
from tai_inference.app import create_app
from tai_inference.config import InferenceSettings
from tai_inference.registry import promote_model, register_model
from tai_inference.training import TrainingOptions, train_model
from tai_quant.features import DEFAULT_FEATURES, feature_bars, normalise_ohlcv
from tai_store import Store
from tai_store.ml_repository import MlModelRepository
from tai_telemetry.metrics import Telemetry
from tests.e2e.conftest import Broker, broker, database_url  # noqa: F401  (fixtures)
from tests.unit.inference.conftest import BUNDLED_EURUSD

pytestmark = pytest.mark.integration
WARM = DEFAULT_FEATURES.warmup_period
FAST = TrainingOptions(evaluate=False, max_rounds=30, early_stopping_rounds=5)


def _events(frame: pd.DataFrame) -> list[BarClosed]:
    return [
        BarClosed(
            symbol="EURUSD",
            timeframe=Timeframe.H1,
            opened_at=bar.opened_at,
            closed_at=bar.opened_at + Timeframe.H1.duration,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            source="test",
        )
        for bar in feature_bars(frame)
    ]


async def test_predictions_flow_and_hot_reload_keeps_order_on_rabbitmq_and_postgres(
    broker: Broker,  # noqa: F811
    database_url: str,  # noqa: F811
) -> None:
    # Arrange: two models in the PostgreSQL registry, A in production
    bars = normalise_ohlcv(pd.read_csv(BUNDLED_EURUSD, index_col=0, parse_dates=True))
    created = datetime(2026, 1, 5, tzinfo=UTC)
    first = train_model(bars.iloc[:1500], FAST, created_at=created).record
    second = replace(
        train_model(
            bars.iloc[:1500], replace(FAST, seed=3, max_depth=3), created_at=created
        ).record,
        model_id="eurusd-1h-xgboost-second",
    )
    clock = SystemClock()
    store = Store(database_url)
    await store.migrate()
    await register_model(store, first)
    await register_model(store, second)
    await promote_model(store, None, first.model_id, clock=clock, promoted_by="test")
    telemetry = Telemetry(service="inference")
    bus = create_bus(broker.url, "inference", clock=clock, telemetry=telemetry)
    received: list[PredictionMade] = []
    done = asyncio.Event()
    stream = _events(bars.iloc[1500 : 1500 + WARM + 40])
    expected_count = len(stream) - (WARM - 1)

    async def observe(envelope: Envelope[Message]) -> None:
        if isinstance(envelope.message, PredictionMade):
            received.append(envelope.message)
            if len(received) >= expected_count:
                done.set()

    await bus.subscribe(
        Subscription(
            queue="test.inference.predictions",
            bindings=[Binding(ml_prediction("EURUSD"))],
            handler=observe,
        )
    )
    await bus.start()
    app = create_app(
        InferenceSettings(database_url=database_url, amqp_url=broker.url, ops_port=0),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
    )
    await app.start()
    try:
        # Act: bars, a promotion in the middle of the stream, more bars
        for bar in stream[: WARM + 10]:
            await bus.publish(bar)
        await promote_model(store, bus, second.model_id, clock=clock, promoted_by="test")
        for bar in stream[WARM + 10 :]:
            await bus.publish(bar)
        await asyncio.wait_for(done.wait(), timeout=120)

        # Assert: every bar after warm-up predicted once, in order; A then B, never back
        assert [p.bar_closed_at for p in received] == [b.closed_at for b in stream[WARM - 1 :]]
        models = [prediction.model_id for prediction in received]
        assert models[0] == first.model_id
        assert models[-1] == second.model_id
        switch = models.index(second.model_id)
        assert set(models[switch:]) == {second.model_id}
        assert all(p.feature_set_version == DEFAULT_FEATURES.version for p in received)
        async with store.transaction() as unit:
            registry = MlModelRepository(unit.session)
            production = await registry.production("EURUSD", "1h")
            archived = await registry.get(first.model_id)
        assert production is not None
        assert production.model_id == second.model_id
        assert production.verified_artifact() == second.artifact
        assert archived is not None
        assert archived.stage == "archived"
    finally:
        await app.stop()
        await bus.close()
        await store.close()
