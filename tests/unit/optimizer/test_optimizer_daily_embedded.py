"""The daily optimizer end to end on the embedded stack (in-memory bus, SQLite ledger).

Production trades sma_cross(10, 30) through ingestion, strategy, risk and execution. The data
is a noisy cycle of 40 bars, on which (10, 30) loses money, so the daily job sees drift,
re-optimises, passes its gates and starts a shadow period. The shadow period either keeps the
cycle (the candidate is better: promoted, strategy.params.updated published) or switches to a
slow 150-bar cycle (the candidate does worse than production there: not promoted).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tai_bus.api import Binding, Subscription
from tai_cli.embedded import EmbeddedOptions, EmbeddedSystem
from tai_core.clock import FakeClock
from tai_events.alerts import AlertRaised
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.control import ConfigureStrategy
from tai_events.orders import OrderRequested
from tai_events.research import ResearchRunFinished
from tai_events.strategies import StrategyParametersUpdated
from tai_events.topics import CONTROL_EXCHANGE
from tai_ingestion.replay import ReplayData
from tai_optimizer.daily import DailyAction, DailyOptimizer, DailySettings, Gates
from tai_store.research_repository import ResearchRepository

pytestmark = pytest.mark.slow

HISTORY_BARS = 1500
LIVE_DAYS = 14
SHADOW_BARS = 200
SYMBOL = "SYNTH"


@dataclass(frozen=True)
class Scenario:
    """What the two daily runs did and what reached the bus."""

    actions: list[DailyAction]
    published: list[Message]
    promoted_parameter_set_id: str
    candidate_parameter_set_id: str


def _cycle_frame(periods: list[float], lengths: list[int], seed: int = 1) -> pd.DataFrame:
    """Return hourly bars whose log price is a sine of the given periods plus noise."""
    generator = np.random.default_rng(seed)
    phases: list[np.ndarray] = []
    phase = 0.0
    for period, length in zip(periods, lengths, strict=True):
        steps = phase + 2 * np.pi * np.arange(length) / period
        phases.append(steps)
        phase = float(steps[-1]) + 2 * np.pi / period
    angle = np.concatenate(phases)
    close = 1.1 * np.exp(0.01 * np.sin(angle) + generator.normal(0, 0.0006, angle.size))
    opens = np.concatenate(([close[0]], close[:-1]))
    index = pd.date_range(datetime(2024, 1, 1, tzinfo=UTC), periods=close.size, freq="h")
    return pd.DataFrame(
        {
            "Open": opens,
            "High": np.maximum(opens, close) * 1.0002,
            "Low": np.minimum(opens, close) * 0.9998,
            "Close": close,
            "Volume": 1000.0,
        },
        index=index.tz_localize(None),
    )


def _settings() -> DailySettings:
    return DailySettings(
        symbol=SYMBOL,
        lookback_days=LIVE_DAYS,
        history_bars=HISTORY_BARS,
        trials=40,
        folds=3,
        shadow_bars=SHADOW_BARS,
        # The cycle's trials differ by real skill, so the spread of their Sharpe ratios is
        # wide and the deflated Sharpe is near 0 (test_optimizer_daily_gates covers that gate).
        gates=Gates(min_deflated_sharpe=0.0),
    )


async def _run_daily_scenario(tmp_path: Path, shadow_period: float) -> Scenario:
    frame = _cycle_frame([40.0, shadow_period], [HISTORY_BARS, SHADOW_BARS])
    data_file = tmp_path / f"{SYMBOL}.csv"
    frame.to_csv(data_file)
    system = EmbeddedSystem(
        EmbeddedOptions(
            data_directory=tmp_path / "ledger",
            replay_file=data_file,
            symbol=SYMBOL,
            serve_console=False,
            sma_fast=10,
            sma_slow=30,
        )
    )
    published: list[Message] = []

    async def record(envelope: Envelope[Message]) -> None:
        published.append(envelope.message)

    await system.start()
    await system.bus.subscribe(
        Subscription(
            queue="test.daily.observer",
            bindings=[
                Binding("strategy.params.updated"),
                Binding("research.run.*"),
                Binding("alert.*"),
                Binding("order.requested"),
                Binding("control.strategy", exchange=CONTROL_EXCHANGE),
            ],
            handler=record,
        )
    )
    try:
        bars = system.ingestion.load().bars
        assert len(bars) == HISTORY_BARS + SHADOW_BARS

        async def settle(_bar: object) -> None:
            await system.bus.drain()

        # Older history is only stored (the strategy warms up on it); the last LIVE_DAYS are
        # traded live by production through every service.
        live_start = HISTORY_BARS - LIVE_DAYS * 24
        async with system.store.transaction() as unit:
            await unit.ohlcv.upsert_many(bars[:live_start])
        await system.ingestion.replay(
            ReplayData(bars=bars[live_start:HISTORY_BARS]), after_bar=settle
        )
        clock = FakeClock(bars[HISTORY_BARS - 1].closed_at)
        job = DailyOptimizer(_settings(), store=system.store, bus=system.bus, clock=clock)
        first = await job.run()
        await system.bus.drain()
        # Production keeps trading beside the shadow candidate for the shadow period.
        await system.ingestion.replay(ReplayData(bars=bars[HISTORY_BARS:]), after_bar=settle)
        clock.set(bars[-1].closed_at)
        second = await job.run()
        await system.bus.drain()
        async with system.store.transaction() as unit:
            repository = ResearchRepository(unit.session)
            candidate = (
                await repository.get_parameter_set(first.parameter_set_id)
                if first.parameter_set_id
                else None
            )
            comparisons = (
                await repository.comparisons(first.parameter_set_id)
                if first.parameter_set_id
                else []
            )
            runs = await repository.list_runs("daily")
            production = await repository.production("sma_cross", SYMBOL)
    finally:
        await system.stop()
    assert first.action is DailyAction.SHADOW_STARTED, first.report
    assert first.report["drift"]["drifted"]
    assert candidate is not None
    assert len(comparisons) == 1
    assert {run.status for run in runs} == {"succeeded"}
    assert len(runs) == 2
    assert all(run.report for run in runs)
    assert production is not None
    assert first.parameter_set_id is not None
    return Scenario(
        [first.action, second.action],
        published,
        production.parameter_set_id,
        first.parameter_set_id,
    )


async def test_daily_job_promotes_a_candidate_that_beats_production_in_the_shadow(
    tmp_path: Path,
) -> None:
    # Act
    scenario = await _run_daily_scenario(tmp_path, 40.0)

    # Assert
    assert scenario.actions == [DailyAction.SHADOW_STARTED, DailyAction.PROMOTED]
    assert scenario.promoted_parameter_set_id == scenario.candidate_parameter_set_id
    commands = [item for item in scenario.published if isinstance(item, ConfigureStrategy)]
    assert len(commands) == 1
    chosen = (commands[0].parameters["fast"], commands[0].parameters["slow"])
    assert chosen != (10, 30)
    assert commands[0].enabled is None  # re-parameterised, never switched on or off
    # The optimizer announces its decision; the live strategy service confirms the switch.
    (finished,) = [
        item
        for item in scenario.published
        if isinstance(item, ResearchRunFinished) and item.outcome == "promoted"
    ]
    assert finished.summary["parameter_set_id"] == scenario.promoted_parameter_set_id
    (update,) = [item for item in scenario.published if isinstance(item, StrategyParametersUpdated)]
    assert update.updated_by != "optimizer"
    assert (update.parameters["fast"], update.parameters["slow"]) == chosen
    orders = [
        item
        for item in scenario.published
        if isinstance(item, OrderRequested) and item.strategy == "sma_cross"
    ]
    # Every sma_cross order on the bus is production's: the shadow's were simulated in-process.
    assert orders
    assert all("SMA(10)" in order.reason and "SMA(30)" in order.reason for order in orders)
    notices = [
        item.message.rsplit(" ", 1)[-1]
        for item in scenario.published
        if isinstance(item, AlertRaised) and item.source == "optimizer"
    ]
    assert notices == ["shadow_started", "promoted"]


async def test_daily_job_keeps_production_when_the_shadow_candidate_does_worse(
    tmp_path: Path,
) -> None:
    # Act
    scenario = await _run_daily_scenario(tmp_path, 150.0)

    # Assert
    assert scenario.actions == [DailyAction.SHADOW_STARTED, DailyAction.NOT_PROMOTED]
    assert scenario.promoted_parameter_set_id != scenario.candidate_parameter_set_id
    assert not [item for item in scenario.published if isinstance(item, StrategyParametersUpdated)]
    orders = [
        item
        for item in scenario.published
        if isinstance(item, OrderRequested) and item.strategy == "sma_cross"
    ]
    assert orders
    assert all("SMA(10)" in order.reason for order in orders)
    notices = [
        item.message.rsplit(" ", 1)[-1]
        for item in scenario.published
        if isinstance(item, AlertRaised) and item.source == "optimizer"
    ]
    assert notices == ["shadow_started", "not_promoted"]
