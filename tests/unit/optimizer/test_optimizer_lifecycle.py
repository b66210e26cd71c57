"""The model lifecycle on SQLite and the in-memory bus: retrain, gate, shadow, decide.

The market is an hourly cycle (up in the first half of each UTC day, down in the second) a
model can learn from the hour of day; then the cycle inverts (drift). The champion learnt the
first cycle; a challenger trained on the latest window learns the second and, shadowed on
bars neither model saw, beats the champion: it is promoted and ``ModelPromoted`` published.
On a market without a pattern the challenger fails its gates and the champion stays.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import FakeClock
from tai_events import Message
from tai_events.codec import Envelope
from tai_events.market import Timeframe
from tai_events.ml import ModelPromoted, RetrainingTrigger
from tai_events.research import ResearchRunFinished, ResearchRunStatus
from tai_events.topics import ALL_RESEARCH_RUNS, MODEL_PROMOTED
from tai_inference.registry import promote_model, register_model
from tai_inference.training import TrainingOptions, train_model
from tai_ingestion.samples import sample_path
from tai_optimizer.lifecycle import LifecycleAction, LifecycleSettings, ModelLifecycle
from tai_optimizer.synthetic import bars_from_frame, bootstrap_frame, hourly_cycle_frame
from tai_store import Store
from tai_store.ml_repository import MlModelRepository
from tai_store.research_repository import ResearchRepository

pytestmark = pytest.mark.slow

SYMBOL = "SYNTH"
START = datetime(2020, 1, 6, tzinfo=UTC)
SETTINGS = LifecycleSettings(
    symbol=SYMBOL,
    training_bars=1_500,
    min_training_bars=1_000,
    data_fallback=False,
    folds=2,
    max_rounds=80,
    shadow_bars=96,
    history_bars=300,
)


@dataclass
class World:
    store: Store
    bus: InMemoryBus
    clock: FakeClock
    published: list[Message]

    async def store_frame(self, frame: pd.DataFrame) -> None:
        async with self.store.transaction() as unit:
            await unit.ohlcv.upsert_many(
                bars_from_frame(frame, symbol=SYMBOL, timeframe=Timeframe.H1)
            )

    async def champion(self, frame: pd.DataFrame) -> str:
        options = TrainingOptions(symbol=SYMBOL, evaluate=False, max_rounds=80)
        record = train_model(frame, options, created_at=self.clock.now()).record
        await register_model(self.store, record)
        await promote_model(self.store, None, record.model_id, clock=self.clock, promoted_by="t")
        return record.model_id


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(START)
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite'}")
    await store.migrate()
    bus = InMemoryBus("test", clock=clock, deterministic=True)
    published: list[Message] = []

    async def observe(envelope: Envelope[Message]) -> None:
        published.append(envelope.message)

    await bus.subscribe(
        Subscription(
            queue="test.lifecycle.observer",
            bindings=[Binding(ALL_RESEARCH_RUNS), Binding(MODEL_PROMOTED)],
            handler=observe,
        )
    )
    await bus.start()
    yield World(store, bus, clock, published)
    await bus.close()
    await store.close()


def _cycles(before: int, after: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    first = hourly_cycle_frame(before, seed=1, start=START)
    second = hourly_cycle_frame(
        after,
        seed=2,
        start=first.index[-1] + pd.Timedelta(hours=1),
        direction=-1.0,
        first_close=float(first["Close"].iloc[-1]),
    )
    return first, second


async def test_a_challenger_that_learnt_the_new_regime_is_promoted_after_its_shadow(
    world: World,
) -> None:
    # Arrange: the champion learnt the first cycle; 800 bars of the inverted one follow
    first, second = _cycles(1_500, 800 + SETTINGS.shadow_bars)
    await world.store_frame(first)
    world.clock.set(first.index[-1].to_pydatetime() + timedelta(hours=1))
    champion = await world.champion(first)
    await world.store_frame(second.iloc[:800])
    world.clock.set(second.index[799].to_pydatetime() + timedelta(hours=1))
    lifecycle = ModelLifecycle(SETTINGS, store=world.store, bus=world.bus, clock=world.clock)

    # Act 1: drift reported -> a challenger trained on the latest 1,500 bars
    started = await lifecycle.retrain(RetrainingTrigger.PREDICTION_QUALITY, "log-loss worse")
    await world.bus.drain()

    # Assert 1: it passed its gates and shadows the champion
    assert started.action == LifecycleAction.SHADOW_STARTED, started.reason
    assert started.challenger_model_id is not None
    assert started.report["data_source"] == "ledger"
    assert started.report["bars"] == 1_500
    gates = {gate["gate"]: gate for gate in started.report["gates"]}
    assert {"walk_forward_sharpe", "walk_forward_trades", "deflated_sharpe"} <= set(gates)
    assert all(gate["passed"] for gate in gates.values())
    assert await lifecycle.conclude_due() == []  # its shadow period has not closed yet

    # Act 2: the shadow period's bars close (unseen by both models), then the verdict
    await world.store_frame(second.iloc[800:])
    world.clock.set(second.index[-1].to_pydatetime() + timedelta(hours=1))
    (decided,) = await lifecycle.conclude_due()
    await world.bus.drain()

    # Assert 2: promoted over the champion, in the registry, the ledger and on the bus
    assert decided.action == LifecycleAction.PROMOTED, decided.reason
    assert "beats production" in decided.reason
    comparison = decided.report["comparison"]
    assert comparison["champion_model_id"] == champion
    assert comparison["challenger"]["sharpe"] > comparison["champion"]["sharpe"]
    async with world.store.transaction() as unit:
        production = await MlModelRepository(unit.session).production(SYMBOL, "1h")
        (challenge,) = await ResearchRepository(unit.session).challenges(SYMBOL, "1h")
        runs = await ResearchRepository(unit.session).list_runs("retrain")
    assert production is not None
    assert production.model_id == started.challenger_model_id
    assert challenge.status == "promoted"
    assert challenge.trigger == "prediction_quality"
    assert challenge.champion_model_id == champion
    assert {run.summary["action"] for run in runs} == {"shadow_started", "promoted"}
    promoted = [m for m in world.published if isinstance(m, ModelPromoted)]
    assert [(m.model_id, m.previous_model_id) for m in promoted] == [
        (started.challenger_model_id, champion)
    ]
    finished = [m for m in world.published if isinstance(m, ResearchRunFinished)]
    assert [(m.kind, m.outcome) for m in finished] == [
        ("retrain", "shadow_started"),
        ("retrain", "promoted"),
    ]


async def test_a_challenger_without_an_edge_is_rejected_and_the_champion_stays(
    world: World,
) -> None:
    # Arrange: a market resampled from EURUSD (no pattern to learn), a champion on it
    sample = pd.read_csv(sample_path("EURUSD.csv"), index_col=0, parse_dates=True)
    market = bootstrap_frame(sample, 1_600, seed=3, start=START)
    await world.store_frame(market)
    world.clock.set(market.index[-1].to_pydatetime() + timedelta(hours=1))
    champion = await world.champion(market.iloc[:1_000])
    lifecycle = ModelLifecycle(SETTINGS, store=world.store, bus=world.bus, clock=world.clock)

    # Act
    outcome = await lifecycle.retrain(RetrainingTrigger.SCHEDULE, "daily")
    await world.bus.drain()

    # Assert: rejected with the failed gates named; nothing registered, champion unchanged
    assert outcome.action == LifecycleAction.REJECTED, outcome.report["gates"]
    assert "failed its gates" in outcome.reason
    failed = [gate["gate"] for gate in outcome.report["gates"] if not gate["passed"]]
    assert failed
    assert all(name in outcome.reason for name in failed)
    async with world.store.transaction() as unit:
        registry = MlModelRepository(unit.session)
        production = await registry.production(SYMBOL, "1h")
        models = await registry.list(SYMBOL, "1h")
        (challenge,) = await ResearchRepository(unit.session).challenges(SYMBOL, "1h")
    assert production is not None
    assert production.model_id == champion
    assert [model.model_id for model in models] == [champion]
    assert challenge.status == "rejected"
    assert challenge.reason == outcome.reason
    (finished,) = [m for m in world.published if isinstance(m, ResearchRunFinished)]
    assert finished.status is ResearchRunStatus.SUCCEEDED
    assert finished.outcome == "rejected"
    assert "failed its gates" in finished.reason
    assert not [m for m in world.published if isinstance(m, ModelPromoted)]


async def test_too_few_stored_bars_fail_the_run_and_say_why(world: World) -> None:
    lifecycle = ModelLifecycle(SETTINGS, store=world.store, bus=world.bus, clock=world.clock)
    with pytest.raises(ValueError, match="only 0 stored SYNTH 1h bars"):
        await lifecycle.retrain(RetrainingTrigger.SCHEDULE, "daily")
    await world.bus.drain()
    (finished,) = [m for m in world.published if isinstance(m, ResearchRunFinished)]
    assert finished.status is ResearchRunStatus.FAILED
    assert finished.error is not None
    assert "only 0 stored" in finished.error
