"""The daily job's drift detection, gates and bookkeeping on a SQLite ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tai_bus import InMemoryBus
from tai_bus.api import Binding, Subscription
from tai_core.clock import FakeClock
from tai_events.alerts import AlertRaised
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.market import BarClosed, Timeframe
from tai_optimizer.daily import (
    DailyAction,
    DailyOptimizer,
    DailySettings,
    Gates,
    check_gates,
    detect_drift,
)
from tai_optimizer.evaluation import EvaluationSettings
from tai_store.database import Store
from tai_store.research_repository import ResearchRepository

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SYMBOL = "SYNTH"


def _cycle(period: float, count: int, seed: int = 1) -> pd.DataFrame:
    generator = np.random.default_rng(seed)
    angle = 2 * np.pi * np.arange(count) / period
    close = 1.1 * np.exp(0.01 * np.sin(angle) + generator.normal(0, 0.0006, count))
    opens = np.concatenate(([close[0]], close[:-1]))
    return pd.DataFrame(
        {
            "Open": opens,
            "High": np.maximum(opens, close) * 1.0002,
            "Low": np.minimum(opens, close) * 0.9998,
            "Close": close,
            "Volume": 1000.0,
        },
        index=pd.date_range(T0, periods=count, freq="h"),
    )


def _bars(frame: pd.DataFrame) -> list[BarClosed]:
    return [
        BarClosed(
            symbol=SYMBOL,
            timeframe=Timeframe.H1,
            opened_at=moment.to_pydatetime(),
            closed_at=moment.to_pydatetime() + timedelta(hours=1),
            open=row.Open,
            high=row.High,
            low=row.Low,
            close=row.Close,
            volume=row.Volume,
            source="test",
        )
        for moment, row in zip(frame.index, frame.itertuples(), strict=True)
    ]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    ledger = Store(f"sqlite+aiosqlite:///{tmp_path}/ledger.sqlite")
    await ledger.migrate()
    yield ledger
    await ledger.close()


async def _bus(published: list[Message]) -> InMemoryBus:
    bus = InMemoryBus("test", deterministic=True)
    await bus.start()

    async def record(envelope: Envelope[Message]) -> None:
        published.append(envelope.message)

    await bus.subscribe(
        Subscription(
            queue="test.observer",
            bindings=[Binding("strategy.params.updated"), Binding("alert.*")],
            handler=record,
        )
    )
    return bus


async def _job(
    store: Store, frame: pd.DataFrame, settings: DailySettings, published: list[Message]
) -> tuple[DailyOptimizer, FakeClock, InMemoryBus]:
    async with store.transaction() as unit:
        await unit.ohlcv.upsert_many(_bars(frame))
    clock = FakeClock(frame.index[-1].to_pydatetime() + timedelta(hours=1))
    bus = await _bus(published)
    return DailyOptimizer(settings, store=store, bus=bus, clock=clock), clock, bus


def _settings(**overrides: object) -> DailySettings:
    values: dict[str, object] = {
        "symbol": SYMBOL,
        "history_bars": 1200,
        "trials": 25,
        "folds": 2,
        "shadow_bars": 48,
    }
    values.update(overrides)
    return DailySettings.model_validate(values)


def _report(sharpe: float, drawdown: float, monte_carlo: float, deflated: float) -> dict:
    return {
        "out_of_sample": {"sharpe": sharpe, "max_drawdown_pct": drawdown},
        "monte_carlo": {"returns": {"max_drawdown_pct": {"p95": monte_carlo}}},
        "deflated_sharpe": {"deflated_sharpe": deflated},
    }


def test_every_gate_must_pass() -> None:
    gates = Gates()

    passing = check_gates(_report(1.0, 5.0, 10.0, 0.9), gates)
    failing = check_gates(_report(0.1, 12.0, 20.0, 0.2), gates)
    not_a_number = check_gates(_report(float("nan"), 5.0, 10.0, 0.9), gates)

    assert all(gate["passed"] for gate in passing)
    assert not any(gate["passed"] for gate in failing)
    assert [gate["passed"] for gate in not_a_number] == [False, True, True, True]


def test_a_losing_replay_and_a_changed_regime_count_as_drift() -> None:
    # Arrange: 1000 bars of a slow cycle, then 400 bars of a fast one production loses on
    frame = pd.concat([_cycle(150.0, 1000), _cycle(40.0, 400, seed=2)])
    frame.index = pd.date_range(T0, periods=len(frame), freq="h")
    recent_start = frame.index[1000].to_pydatetime()
    empty = pd.Series(dtype=np.float64)

    # Act
    drift = detect_drift(
        empty,
        frame,
        recent_start,
        {"fast": 10, "slow": 30},
        _settings(),
        EvaluationSettings(periods_per_year=8760.0),
    )

    # Assert
    assert drift.drifted
    assert any("Sharpe" in reason for reason in drift.reasons)
    assert drift.expected["sharpe"] < 0


def test_a_steady_profitable_regime_is_not_drift() -> None:
    frame = _cycle(150.0, 1400)
    recent_start = frame.index[1000].to_pydatetime()
    live = pd.Series(
        np.linspace(100_000.0, 100_500.0, 400), index=frame.index[1000:], dtype=np.float64
    )

    drift = detect_drift(
        live,
        frame,
        recent_start,
        {"fast": 10, "slow": 30},
        _settings(drift={"max_return_gap_pct": 5.0}),
        EvaluationSettings(periods_per_year=8760.0),
    )

    assert not drift.drifted, drift.reasons


async def test_a_candidate_failing_the_deflated_sharpe_gate_is_rejected_and_never_shadowed(
    store: Store,
) -> None:
    # Arrange: a 40-bar cycle: (10, 30) loses, the optimiser finds winners, but the trials'
    # Sharpe ratios spread so widely that the winner's deflated Sharpe is near zero
    published: list[Message] = []
    job, _, bus = await _job(store, _cycle(40.0, 1200), _settings(), published)

    # Act
    outcome = await job.run()
    await bus.drain()

    # Assert
    assert outcome.action is DailyAction.REJECTED_BY_GATES
    failed = [gate["gate"] for gate in outcome.report["gates"] if not gate["passed"]]
    assert "deflated_sharpe" in failed
    async with store.transaction() as unit:
        repository = ResearchRepository(unit.session)
        assert outcome.parameter_set_id is not None
        candidate = await repository.get_parameter_set(outcome.parameter_set_id)
        shadows = await repository.parameter_sets("sma_cross", SYMBOL, "shadow")
        run = await repository.get_run(outcome.run_id)
    assert candidate is not None
    assert candidate.status == "rejected"
    assert candidate.reason is not None
    assert "deflated_sharpe" in candidate.reason
    assert shadows == []
    assert run is not None
    assert run.status == "succeeded"
    assert run.report["optimisation"]["pbo"] is not None
    alerts = [item for item in published if isinstance(item, AlertRaised)]
    assert [alert.message.rsplit(" ", 1)[-1] for alert in alerts] == ["rejected_by_gates"]
    await bus.close()


async def test_a_shadowing_candidate_is_left_alone_until_its_period_ends(store: Store) -> None:
    # Arrange
    published: list[Message] = []
    job, clock, bus = await _job(
        store, _cycle(40.0, 1200), _settings(gates=Gates(min_deflated_sharpe=0.0)), published
    )
    started = await job.run()

    # Act: the next day, with the 48-bar shadow period not yet over
    clock.advance(timedelta(hours=24))
    waiting = await job.run()

    # Assert
    assert started.action is DailyAction.SHADOW_STARTED
    assert waiting.action is DailyAction.SHADOWING
    assert waiting.parameter_set_id == started.parameter_set_id
    async with store.transaction() as unit:
        runs = await ResearchRepository(unit.session).list_runs("daily")
    assert len(runs) == 2
    await bus.close()


async def test_no_drift_means_no_new_candidate(store: Store) -> None:
    published: list[Message] = []
    job, _, bus = await _job(store, _cycle(150.0, 1200), _settings(), published)

    outcome = await job.run()

    assert outcome.action is DailyAction.NO_DRIFT, outcome.report["drift"]
    async with store.transaction() as unit:
        repository = ResearchRepository(unit.session)
        candidates = await repository.parameter_sets("sma_cross", SYMBOL, "candidate")
        production = await repository.production("sma_cross", SYMBOL)
    assert candidates == []
    assert production is not None
    assert production.parameters == {"fast": 10, "slow": 30, "quantity": 10_000.0}
    await bus.close()
