"""Model registry repository: register, find, promote and flag models for retraining.

Use it inside a unit of work: ``MlModelRepository(unit.session)``. Artifacts are bytes in a
native format with their SHA-256; :meth:`ModelRecord.verified_artifact` refuses bytes whose
hash does not match, so a tampered or truncated artifact is never loaded. A model made of
several boosters (a stacked ensemble, per-regime models) is a ``bundle-json`` artifact: a
JSON document holding each booster in its own native text format (XGBoost JSON, LightGBM
text) with its own SHA-256, and how they combine — still no pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tai_events.ml import TradePlan
from tai_store.models_ml import MODEL_STAGES, MlModelRow

ARTIFACT_FORMATS = ("xgboost-ubj", "xgboost-json", "lightgbm-text", "bundle-json")
"""Native artifact formats the registry accepts (never pickle or joblib)."""
BUNDLE_COMPONENT_FORMATS = ("xgboost-json", "lightgbm-text")
"""Formats a ``bundle-json`` artifact may hold (text formats, so the bundle stays JSON)."""


class ArtifactIntegrityError(ValueError):
    """A stored artifact's bytes do not match its recorded SHA-256."""


class UnknownModelError(LookupError):
    """No registered model has the requested id."""


def sha256_hex(content: bytes) -> str:
    """Return the lower-case hex SHA-256 of ``content``."""
    return hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class ModelRecord:
    """A registered model as the registry stores it."""

    model_id: str
    name: str
    algorithm: str
    symbol: str
    timeframe: str
    feature_set_version: str
    feature_names: list[str]
    training_start: datetime
    training_end: datetime
    data_sha256: str
    parameters: dict[str, Any]
    metrics: dict[str, Any]
    importances: dict[str, float]
    artifact_format: str
    artifact: bytes = field(repr=False)
    created_at: datetime
    artifact_sha256: str = ""
    extras: dict[str, Any] = field(default_factory=dict)
    stage: str = "candidate"
    promoted_at: datetime | None = None
    needs_retraining: bool = False
    retraining_reason: str | None = None

    def __post_init__(self) -> None:
        if self.artifact_format not in ARTIFACT_FORMATS:
            raise ValueError(
                f"artifact format {self.artifact_format!r} is not one of {ARTIFACT_FORMATS}"
            )
        if self.stage not in MODEL_STAGES:
            raise ValueError(f"stage {self.stage!r} is not one of {MODEL_STAGES}")
        if not self.artifact_sha256:
            object.__setattr__(self, "artifact_sha256", sha256_hex(self.artifact))

    def verified_artifact(self) -> bytes:
        """Return the artifact bytes after checking them against the recorded SHA-256."""
        actual = sha256_hex(self.artifact)
        if actual != self.artifact_sha256:
            raise ArtifactIntegrityError(
                f"artifact of model {self.model_id} has SHA-256 {actual}, "
                f"registered {self.artifact_sha256}"
            )
        return self.artifact

    def trade_plan(self) -> TradePlan:
        """Return the trade plan the model was trained for (its labels and threshold).

        Models registered before plans were stored carry their barrier and signal threshold
        in ``extras``/``parameters``: the plan is rebuilt from them.
        """
        stored = self.extras.get("trade_plan")
        if stored is not None:
            return TradePlan.model_validate(stored)
        barrier = self.extras.get("barrier")
        if barrier is None:
            raise ValueError(f"model {self.model_id} records no trade plan")
        return TradePlan(
            take_profit_atr=float(barrier["take_profit"]),
            stop_loss_atr=float(barrier["stop_loss"]),
            max_horizon_bars=int(barrier["max_horizon"]),
            atr_period=int(barrier.get("atr_period", 14)),
            probability_threshold=float(self.parameters.get("signal_threshold", 0.45)),
        )

    @property
    def data_end(self) -> datetime:
        """Return the opening time of the newest bar the model learnt from (its age's origin)."""
        stored = self.extras.get("data_end")
        return datetime.fromisoformat(stored) if stored else self.training_end


def bundle_components(artifact: bytes) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """Return (composition, {name: (format, bytes)}) of a verified ``bundle-json`` artifact.

    Each component's bytes are checked against the SHA-256 the bundle records for it.
    """
    try:
        document = json.loads(artifact.decode("utf-8"))
        composition = dict(document["composition"])
        entries = dict(document["components"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise ArtifactIntegrityError(f"not a model bundle: {error}") from error
    components: dict[str, tuple[str, bytes]] = {}
    for name, entry in entries.items():
        artifact_format = str(entry["format"])
        if artifact_format not in BUNDLE_COMPONENT_FORMATS:
            raise ArtifactIntegrityError(f"bundle component {name} has format {artifact_format}")
        content = str(entry["content"]).encode("utf-8")
        if sha256_hex(content) != entry["sha256"]:
            raise ArtifactIntegrityError(f"bundle component {name} does not match its SHA-256")
        components[str(name)] = (artifact_format, content)
    return composition, components


def make_bundle(composition: dict[str, Any], components: dict[str, tuple[str, bytes]]) -> bytes:
    """Return the ``bundle-json`` artifact of text-format components and their composition."""
    entries: dict[str, Any] = {}
    for name, (artifact_format, content) in components.items():
        if artifact_format not in BUNDLE_COMPONENT_FORMATS:
            raise ValueError(f"component {name}: {artifact_format} cannot go in a bundle")
        entries[name] = {
            "format": artifact_format,
            "sha256": sha256_hex(content),
            "content": content.decode("utf-8"),
        }
    document = {"composition": composition, "components": entries}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _record(row: MlModelRow) -> ModelRecord:
    return ModelRecord(
        model_id=row.model_id,
        name=row.name,
        algorithm=row.algorithm,
        symbol=row.symbol,
        timeframe=row.timeframe,
        feature_set_version=row.feature_set_version,
        feature_names=list(row.feature_names),
        training_start=row.training_start,
        training_end=row.training_end,
        data_sha256=row.data_sha256,
        parameters=dict(row.parameters),
        metrics=dict(row.metrics),
        importances=dict(row.importances),
        artifact_format=row.artifact_format,
        artifact=bytes(row.artifact),
        artifact_sha256=row.artifact_sha256,
        created_at=row.created_at,
        extras=dict(row.extras),
        stage=row.stage,
        promoted_at=row.promoted_at,
        needs_retraining=row.needs_retraining,
        retraining_reason=row.retraining_reason,
    )


@dataclass(frozen=True)
class Promotion:
    """The outcome of a promotion: the new production model and the one it replaced."""

    model: ModelRecord
    previous_model_id: str | None


class MlModelRepository:
    """Registered models in one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, record: ModelRecord) -> None:
        """Register a model (a new id; its artifact is checked against its SHA-256 first)."""
        record.verified_artifact()
        self._session.add(
            MlModelRow(
                model_id=record.model_id,
                name=record.name,
                algorithm=record.algorithm,
                symbol=record.symbol,
                timeframe=record.timeframe,
                stage=record.stage,
                feature_set_version=record.feature_set_version,
                feature_names=list(record.feature_names),
                training_start=record.training_start,
                training_end=record.training_end,
                data_sha256=record.data_sha256,
                parameters=record.parameters,
                metrics=record.metrics,
                importances=record.importances,
                extras=record.extras,
                artifact_format=record.artifact_format,
                artifact_sha256=record.artifact_sha256,
                artifact=record.artifact,
                created_at=record.created_at,
                promoted_at=record.promoted_at,
                needs_retraining=record.needs_retraining,
                retraining_reason=record.retraining_reason,
            )
        )
        await self._session.flush()

    async def get(self, model_id: str) -> ModelRecord | None:
        """Return a model by id, or None."""
        row = await self._session.get(MlModelRow, model_id)
        return _record(row) if row is not None else None

    async def production(self, symbol: str, timeframe: str) -> ModelRecord | None:
        """Return the production model of a symbol and timeframe, or None."""
        rows = await self._session.scalars(
            select(MlModelRow).where(
                MlModelRow.symbol == symbol,
                MlModelRow.timeframe == timeframe,
                MlModelRow.stage == "production",
            )
        )
        row = rows.first()
        return _record(row) if row is not None else None

    async def list(
        self, symbol: str | None = None, timeframe: str | None = None
    ) -> list[ModelRecord]:
        """Return the registered models, oldest first, optionally of one symbol/timeframe."""
        statement = select(MlModelRow).order_by(MlModelRow.created_at, MlModelRow.model_id)
        if symbol is not None:
            statement = statement.where(MlModelRow.symbol == symbol)
        if timeframe is not None:
            statement = statement.where(MlModelRow.timeframe == timeframe)
        return [_record(row) for row in await self._session.scalars(statement)]

    async def promote(self, model_id: str, at: datetime) -> Promotion:
        """Make a model production for its symbol/timeframe, archiving the previous one."""
        row = await self._session.get(MlModelRow, model_id, with_for_update=True)
        if row is None:
            raise UnknownModelError(model_id)
        _record(row).verified_artifact()
        previous = await self.production(row.symbol, row.timeframe)
        previous_id = previous.model_id if previous is not None else None
        if previous_id is not None and previous_id != model_id:
            await self._session.execute(
                update(MlModelRow)
                .where(MlModelRow.model_id == previous_id)
                .values(stage="archived")
            )
        row.stage = "production"
        row.promoted_at = at
        await self._session.flush()
        return Promotion(
            model=_record(row), previous_model_id=previous_id if previous_id != model_id else None
        )

    async def archive(self, model_id: str) -> None:
        """Move a model to the archived stage."""
        row = await self._session.get(MlModelRow, model_id)
        if row is None:
            raise UnknownModelError(model_id)
        row.stage = "archived"
        await self._session.flush()

    async def mark_for_retraining(self, model_id: str, reason: str) -> bool:
        """Flag a model for retraining; False if it was already flagged (reason kept)."""
        row = await self._session.get(MlModelRow, model_id)
        if row is None:
            raise UnknownModelError(model_id)
        if row.needs_retraining:
            return False
        row.needs_retraining = True
        row.retraining_reason = reason
        await self._session.flush()
        return True
