"""The model registry's table: metadata, metrics and the native artifact of each model.

Artifacts are stored in their library's native format (XGBoost UBJ, LightGBM text) with their
SHA-256; they are never pickled, so loading one cannot execute code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tai_store.models import Base, UtcTimestamp

MODEL_STAGES = ("candidate", "production", "archived")
"""Lifecycle stages of a registered model (tai_events.ml.ModelStage values)."""


class MlModelRow(Base):
    """One registered model: what it was trained on, how well it did, and its artifact."""

    __tablename__ = "ml_models"
    __table_args__ = (
        CheckConstraint("stage IN ('candidate', 'production', 'archived')", name="stage"),
        Index("ix_ml_models_symbol_timeframe_stage", "symbol", "timeframe", "stage"),
    )

    model_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    algorithm: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(4))
    stage: Mapped[str] = mapped_column(String(16))
    feature_set_version: Mapped[str] = mapped_column(String(64))
    feature_names: Mapped[list[str]] = mapped_column(JSON)
    training_start: Mapped[datetime] = mapped_column(UtcTimestamp)
    training_end: Mapped[datetime] = mapped_column(UtcTimestamp)
    data_sha256: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    importances: Mapped[dict[str, float]] = mapped_column(JSON)
    extras: Mapped[dict[str, Any]] = mapped_column(JSON)
    artifact_format: Mapped[str] = mapped_column(String(32))
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    artifact: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    promoted_at: Mapped[datetime | None] = mapped_column(UtcTimestamp)
    needs_retraining: Mapped[bool] = mapped_column(Boolean, default=False)
    retraining_reason: Mapped[str | None] = mapped_column(Text)
