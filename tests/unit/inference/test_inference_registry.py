"""The model registry on SQLite: stages, promotion, integrity, retraining flags."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect

from tai_store import Store
from tai_store.ml_repository import (
    ArtifactIntegrityError,
    MlModelRepository,
    ModelRecord,
    UnknownModelError,
)

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def record(model_id: str, artifact: bytes = b"tree\nversion=v4\n") -> ModelRecord:
    return ModelRecord(
        model_id=model_id,
        name="lightgbm_triple_barrier",
        algorithm="lightgbm",
        symbol="EURUSD",
        timeframe="1h",
        feature_set_version="fs1-test",
        feature_names=["a", "b"],
        training_start=T0,
        training_end=T0,
        data_sha256="f" * 64,
        parameters={"seed": 7},
        metrics={"log_loss": 1.0},
        importances={"a": 0.6, "b": 0.4},
        artifact_format="lightgbm-text",
        artifact=artifact,
        created_at=T0,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = Store(f"sqlite+aiosqlite:///{tmp_path / 'registry.sqlite'}")
    await opened.migrate()
    yield opened
    await opened.close()


async def test_migration_creates_the_registry_table(store: Store) -> None:
    async with store.engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    assert "ml_models" in tables


async def test_registered_model_round_trips_with_its_metadata(store: Store) -> None:
    async with store.transaction() as unit:
        await MlModelRepository(unit.session).add(record("m1"))
    async with store.transaction() as unit:
        loaded = await MlModelRepository(unit.session).get("m1")
    assert loaded == record("m1")
    assert loaded is not None
    assert loaded.stage == "candidate"


async def test_promotion_archives_the_previous_production_model(store: Store) -> None:
    async with store.transaction() as unit:
        registry = MlModelRepository(unit.session)
        await registry.add(record("m1"))
        await registry.add(record("m2"))
        first = await registry.promote("m1", T0)
        second = await registry.promote("m2", T0)
    async with store.transaction() as unit:
        registry = MlModelRepository(unit.session)
        production = await registry.production("EURUSD", "1h")
        archived = await registry.get("m1")
    assert first.previous_model_id is None
    assert second.previous_model_id == "m1"
    assert production is not None
    assert production.model_id == "m2"
    assert archived is not None
    assert archived.stage == "archived"


async def test_registry_refuses_bytes_that_do_not_match_their_hash(store: Store) -> None:
    tampered = replace(record("m1"), artifact=b"tree\nversion=v5\n")
    with pytest.raises(ArtifactIntegrityError):
        async with store.transaction() as unit:
            await MlModelRepository(unit.session).add(tampered)


def test_pickle_is_not_an_accepted_artifact_format() -> None:
    with pytest.raises(ValueError, match="artifact format"):
        replace(record("m1"), artifact_format="pickle")


async def test_marking_for_retraining_happens_once(store: Store) -> None:
    async with store.transaction() as unit:
        registry = MlModelRepository(unit.session)
        await registry.add(record("m1"))
        assert await registry.mark_for_retraining("m1", "feature_drift: x")
        assert not await registry.mark_for_retraining("m1", "prediction_quality: y")
        stored = await registry.get("m1")
    assert stored is not None
    assert stored.retraining_reason == "feature_drift: x"


async def test_promoting_an_unknown_model_fails(store: Store) -> None:
    with pytest.raises(UnknownModelError):
        async with store.transaction() as unit:
            await MlModelRepository(unit.session).promote("missing", T0)
