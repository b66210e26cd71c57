"""The learning loop on a real RabbitMQ vhost and PostgreSQL database.

Inference serves a champion that learnt an hourly cycle; the replayed market then inverts the
cycle and doubles its noise (drift injected into the data). Inference's drift monitor flags the
model and publishes ``ModelRetrainingRequested``; the optimizer service trains a challenger on
the latest window, gates it walk-forward and starts its shadow period; when the shadow bars
have closed it replays ml_driven on both models, promotes the challenger (``ModelPromoted``),
and inference hot-reloads it. Everything is on the bus and in the ledger, with the reasons.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pandas as pd
import pytest

from tai_bus import Binding, Subscription, create_bus
from tai_core.clock import FakeClock
from tai_events import Message
from tai_events.codec import Envelope
from tai_events.market import Timeframe
from tai_events.ml import ModelPromoted, ModelRetrainingRequested, PredictionMade, RetrainingTrigger
from tai_events.research import ResearchRunFinished
from tai_events.topics import (
    ALL_PREDICTIONS,
    ALL_RESEARCH_RUNS,
    ALL_RETRAINING_REQUESTS,
    MODEL_PROMOTED,
)
from tai_inference.app import InferenceApp
from tai_inference.app import create_app as create_inference
from tai_inference.config import InferenceSettings
from tai_inference.registry import promote_model, register_model
from tai_inference.training import TrainingOptions, train_model
from tai_optimizer.app import create_app as create_optimizer
from tai_optimizer.config import OptimizerSettings
from tai_optimizer.synthetic import bars_from_frame, hourly_cycle_frame
from tai_store import Store
from tai_store.ml_repository import MlModelRepository
from tai_store.research_repository import ResearchRepository
from tai_telemetry.metrics import Telemetry
from tests.e2e.conftest import Broker, broker, database_url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

SYMBOL = "SYNTH"
START = datetime(2020, 1, 6, tzinfo=UTC)
WAIT_SECONDS = 120


class Observer:
    """Everything the loop publishes that the test looks at, with events to wait on."""

    def __init__(self) -> None:
        self.predictions: dict[datetime, PredictionMade] = {}
        self.requests: list[ModelRetrainingRequested] = []
        self.finished: list[ResearchRunFinished] = []
        self.promotions: list[ModelPromoted] = []
        self.changed = asyncio.Condition()

    async def __call__(self, envelope: Envelope[Message]) -> None:
        message = envelope.message
        if isinstance(message, PredictionMade):
            self.predictions[message.bar_closed_at] = message
        elif isinstance(message, ModelRetrainingRequested):
            self.requests.append(message)
        elif isinstance(message, ResearchRunFinished):
            self.finished.append(message)
        elif isinstance(message, ModelPromoted):
            self.promotions.append(message)
        async with self.changed:
            self.changed.notify_all()

    async def until(self, condition: object) -> None:
        async def wait() -> None:
            async with self.changed:
                await self.changed.wait_for(condition)  # type: ignore[arg-type]

        await asyncio.wait_for(wait(), timeout=WAIT_SECONDS)


async def _served(inference: InferenceApp, model_id: str) -> None:
    """Wait until inference hot-reloaded the model (its models queue is its own)."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while (served := inference.engine.model(SYMBOL)) is None or served.model_id != model_id:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"inference never served {model_id}")
        await asyncio.sleep(0.05)


def _market() -> tuple[pd.DataFrame, pd.DataFrame]:
    before = hourly_cycle_frame(1_500, seed=1, start=START)
    after = hourly_cycle_frame(
        800,
        seed=2,
        start=before.index[-1] + pd.Timedelta(hours=1),
        direction=-1.0,
        noise=0.0006,
        first_close=float(before["Close"].iloc[-1]),
    )
    return before, after


async def test_drift_in_replayed_data_retrains_shadows_and_promotes_a_challenger(
    broker: Broker,  # noqa: F811
    database_url: str,  # noqa: F811
) -> None:
    # Arrange: the ledger holds the first cycle; the champion learnt it and serves
    before, after = _market()
    history = bars_from_frame(before, symbol=SYMBOL, timeframe=Timeframe.H1)
    live = bars_from_frame(after, symbol=SYMBOL, timeframe=Timeframe.H1)
    clock = FakeClock(history[-1].closed_at)
    store = Store(database_url)
    await store.migrate()
    await store.store_bars(history)
    champion = train_model(
        before, TrainingOptions(symbol=SYMBOL, max_rounds=150, folds=2), created_at=clock.now()
    ).record
    await register_model(store, champion)
    await promote_model(store, None, champion.model_id, clock=clock, promoted_by="test")
    observer = Observer()
    observing = create_bus(broker.url, "test", clock=clock)
    await observing.subscribe(
        Subscription(
            queue="test.loop.observer",
            bindings=[
                Binding(ALL_PREDICTIONS),
                Binding(ALL_RETRAINING_REQUESTS),
                Binding(ALL_RESEARCH_RUNS),
                Binding(MODEL_PROMOTED),
            ],
            handler=observer,
        )
    )
    await observing.start()
    inference_bus = create_bus(broker.url, "inference", clock=clock)
    optimizer_bus = create_bus(broker.url, "optimizer", clock=clock)
    inference = create_inference(
        InferenceSettings(
            database_url=database_url,
            amqp_url=broker.url,
            ops_port=0,
            symbols=(SYMBOL,),
            drift_window=600,
            drift_check_every=50,
            quality_window=5_000,  # let the feature drift speak first
            max_model_age_hours=0,
        ),
        bus=inference_bus,
        store=store,
        clock=clock,
        telemetry=Telemetry(service="inference"),
    )
    optimizer = create_optimizer(
        OptimizerSettings(
            database_url=database_url,
            amqp_url=broker.url,
            ops_port=0,
            model_training_bars=800,
            model_folds=2,
            model_shadow_bars=96,
            data_fallback=False,
        ),
        bus=optimizer_bus,
        store=store,
        clock=clock,
        telemetry=Telemetry(service="optimizer"),
    )
    await inference.start()
    await optimizer.start()
    await inference_bus.start()
    await optimizer_bus.start()
    try:
        # Act: replay the drifted market bar by bar, as ingestion would (stored, then sent)
        for bar in live:
            await store.store_bars([bar])
            clock.set(bar.closed_at)
            await inference_bus.publish(bar)
            await observer.until(lambda bar=bar: bar.closed_at in observer.predictions)
            if observer.requests and not observer.finished:
                await observer.until(lambda: bool(observer.finished))  # the retrain's verdict
            if observer.promotions:
                break
        await observer.until(lambda: bool(observer.promotions))
        await _served(inference, observer.promotions[0].model_id)
        after_promotion = live[live.index(bar) + 1 : live.index(bar) + 4]
        for later in after_promotion:
            await store.store_bars([later])
            clock.set(later.closed_at)
            await inference_bus.publish(later)
            await observer.until(lambda later=later: later.closed_at in observer.predictions)

        # Assert: on the bus — the request, the shadow start, the promotion and its reason
        (request, *_) = observer.requests
        assert request.trigger is RetrainingTrigger.FEATURE_DRIFT
        assert request.model_id == champion.model_id
        verdicts = [(m.kind, m.outcome) for m in observer.finished]
        assert verdicts[0] == ("retrain", "shadow_started")
        assert ("retrain", "promoted") in verdicts
        promoted_run = next(m for m in observer.finished if m.outcome == "promoted")
        assert "beats production" in promoted_run.reason
        (promotion,) = observer.promotions
        assert promotion.previous_model_id == champion.model_id
        challenger = promotion.model_id
        assert challenger != champion.model_id
        assert [observer.predictions[b.closed_at].model_id for b in after_promotion] == [
            challenger
        ] * len(after_promotion)

        # ... and in the ledger: the challenge with its gates and shadow verdict, the registry
        async with store.transaction() as unit:
            research = ResearchRepository(unit.session)
            (challenge,) = await research.challenges(SYMBOL, "1h")
            runs = await research.list_runs("retrain")
            registry = MlModelRepository(unit.session)
            production = await registry.production(SYMBOL, "1h")
            retired = await registry.get(champion.model_id)
        assert challenge.status == "promoted"
        assert challenge.trigger == "feature_drift"
        assert challenge.champion_model_id == champion.model_id
        assert challenge.challenger_model_id == challenger
        assert challenge.reason == promoted_run.reason
        assert all(gate["passed"] for gate in challenge.validation["gates"])
        assert (
            challenge.comparison["challenger"]["sharpe"]
            > challenge.comparison["champion"]["sharpe"]
        )
        assert {run.summary["action"] for run in runs} >= {"shadow_started", "promoted"}
        assert production is not None
        assert production.model_id == challenger
        assert retired is not None
        assert retired.stage == "archived"
        assert retired.needs_retraining
        assert (retired.retraining_reason or "").startswith("feature_drift")
    finally:
        await inference.stop()
        await optimizer.stop()
        await inference_bus.close()
        await optimizer_bus.close()
        await observing.close()
        await store.close()
