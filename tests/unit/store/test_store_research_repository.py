"""Research repository on SQLite: runs, parameter-set lifecycle, shadow comparisons."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tai_store import Store
from tai_store.research_repository import (
    ResearchRepository,
    ShadowComparison,
    UnknownResearchRecordError,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
async def research_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path}/research.sqlite")
    await store.migrate()
    yield store
    await store.close()


async def test_a_run_is_stored_with_its_report(research_store: Store) -> None:
    async with research_store.transaction() as unit:
        repository = ResearchRepository(unit.session)
        await repository.start_run(
            "run-1",
            kind="optimize",
            strategy="sma_cross",
            symbol="EURUSD",
            configuration={"trials": 10},
            started_at=T0,
        )
        await repository.finish_run(
            "run-1",
            finished_at=T0 + timedelta(minutes=1),
            summary={"best": 1.2},
            report={"trials": [1, 2]},
        )

    async with research_store.transaction() as unit:
        run = await ResearchRepository(unit.session).get_run("run-1")

    assert run is not None
    assert run.status == "succeeded"
    assert run.report == {"trials": [1, 2]}
    assert run.finished_at == T0 + timedelta(minutes=1)


async def test_a_failed_run_keeps_its_error(research_store: Store) -> None:
    async with research_store.transaction() as unit:
        repository = ResearchRepository(unit.session)
        await repository.start_run(
            "run-2",
            kind="daily",
            strategy="sma_cross",
            symbol="EURUSD",
            configuration={},
            started_at=T0,
        )
        await repository.finish_run("run-2", finished_at=T0, summary={}, report={}, error="boom")
        run = await repository.get_run("run-2")

    assert run is not None
    assert run.status == "failed"
    assert run.error == "boom"


async def test_candidate_lifecycle_from_shadow_to_promotion(research_store: Store) -> None:
    # Arrange
    async with research_store.transaction() as unit:
        repository = ResearchRepository(unit.session)
        await repository.register_parameter_set(
            "baseline",
            strategy="sma_cross",
            symbol="EURUSD",
            timeframe="H1",
            parameters={"fast": 10, "slow": 30},
            status="promoted",
            created_at=T0,
        )
        await repository.register_parameter_set(
            "candidate",
            strategy="sma_cross",
            symbol="EURUSD",
            timeframe="H1",
            parameters={"fast": 12, "slow": 40},
            status="candidate",
            created_at=T0 + timedelta(days=1),
        )

    # Act
    async with research_store.transaction() as unit:
        repository = ResearchRepository(unit.session)
        await repository.start_shadow(
            "candidate", started_at=T0 + timedelta(days=1), until=T0 + timedelta(days=8)
        )
        await repository.add_comparison(
            ShadowComparison(
                parameter_set_id="candidate",
                production_parameters={"fast": 10, "slow": 30},
                started_at=T0 + timedelta(days=1),
                ended_at=T0 + timedelta(days=8),
                bars=168,
                candidate_metrics={"sharpe": 1.5},
                production_metrics={"sharpe": 0.5},
                score_difference=1.0,
                candidate_better=True,
                decided_at=T0 + timedelta(days=8),
            )
        )
        await repository.decide(
            "candidate", status="promoted", decided_at=T0 + timedelta(days=8), reason="better"
        )
        await repository.decide(
            "baseline", status="retired", decided_at=T0 + timedelta(days=8), reason="replaced"
        )

    # Assert
    async with research_store.transaction() as unit:
        repository = ResearchRepository(unit.session)
        production = await repository.production("sma_cross", "EURUSD")
        comparisons = await repository.comparisons("candidate")
    assert production is not None
    assert production.parameter_set_id == "candidate"
    assert [item.candidate_better for item in comparisons] == [True]


async def test_only_a_candidate_can_start_a_shadow(research_store: Store) -> None:
    async with research_store.transaction() as unit:
        repository = ResearchRepository(unit.session)
        await repository.register_parameter_set(
            "old",
            strategy="sma_cross",
            symbol="EURUSD",
            timeframe="H1",
            parameters={},
            status="rejected",
            created_at=T0,
        )
        with pytest.raises(ValueError, match="only a candidate"):
            await repository.start_shadow("old", started_at=T0, until=T0)
        with pytest.raises(UnknownResearchRecordError):
            await repository.decide("missing", status="rejected", decided_at=T0, reason="")
        with pytest.raises(ValueError, match="unknown run kind"):
            await repository.start_run(
                "x", kind="nonsense", strategy="s", symbol="E", configuration={}, started_at=T0
            )
