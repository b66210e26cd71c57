"""The optimizer service's handlers on SQLite and the in-memory bus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tai_bus import InMemoryBus
from tai_core.clock import FakeClock
from tai_events.base import Message
from tai_events.codec import Envelope, make_headers
from tai_events.market import Timeframe
from tai_events.ml import ModelRetrainingRequested, RetrainingTrigger
from tai_events.topics import model_retraining
from tai_ingestion.samples import sample_path
from tai_optimizer.app import create_app
from tai_optimizer.config import OptimizerSettings
from tai_optimizer.handlers import on_retraining_requested
from tai_optimizer.synthetic import bars_from_frame, bootstrap_frame
from tai_store import Store
from tai_store.research_repository import ResearchRepository
from tai_telemetry.metrics import Telemetry

pytestmark = pytest.mark.slow

START = datetime(2020, 1, 6, tzinfo=UTC)


async def test_a_redelivered_retraining_request_trains_one_challenger(tmp_path: Path) -> None:
    # Arrange: a ledger of 1,200 bars and the service on it
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite'}"
    store = Store(url)
    await store.migrate()
    sample = pd.read_csv(sample_path("EURUSD.csv"), index_col=0, parse_dates=True)
    market = bootstrap_frame(sample, 1_200, seed=4, start=START)
    await store.store_bars(bars_from_frame(market, symbol="SYNTH", timeframe=Timeframe.H1))
    clock = FakeClock(market.index[-1].to_pydatetime() + timedelta(hours=1))
    bus = InMemoryBus("optimizer", clock=clock, deterministic=True)
    settings = OptimizerSettings(
        database_url=url,
        amqp_url="memory://",
        ops_port=0,
        model_training_bars=1_000,
        model_folds=2,
        data_fallback=False,
    )
    app = create_app(settings, bus=bus, store=store, clock=clock, telemetry=Telemetry("t"))
    request = ModelRetrainingRequested(
        model_id="synth-1h-xgboost-old",
        symbol="SYNTH",
        timeframe=Timeframe.H1,
        trigger=RetrainingTrigger.MODEL_EXPIRED,
        reason="model is 400 h old",
        requested_at=clock.now(),
        requested_by="inference",
    )
    envelope: Envelope[Message] = Envelope(
        headers=make_headers(request, producer="inference", occurred_at=clock.now()),
        message=request,
        routing_key=model_retraining("SYNTH"),
    )
    await bus.start()
    try:
        # Act: delivered, then redelivered
        await on_retraining_requested(envelope, app.context)
        await on_retraining_requested(
            Envelope(envelope.headers, request, envelope.routing_key, redelivered=True),
            app.context,
        )
        # Assert: one retrain run, its challenge filed under the trigger
        async with store.transaction() as unit:
            research = ResearchRepository(unit.session)
            runs = await research.list_runs("retrain")
            challenges = await research.challenges("SYNTH", "1h")
        assert len(runs) == 1
        assert runs[0].configuration["trigger"] == "model_expired"
        assert [challenge.trigger for challenge in challenges] == ["model_expired"]
    finally:
        await bus.close()
        await store.close()
