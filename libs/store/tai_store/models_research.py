"""Research tables: runs and reports, parameter sets, shadow comparisons, model challenges."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tai_store.models import AutoIncrementId, Base, UtcTimestamp

RUN_KINDS = ("walk_forward", "optimize", "montecarlo", "daily", "retrain")
RUN_STATUSES = ("running", "succeeded", "failed")
PARAMETER_SET_STATUSES = ("candidate", "shadow", "promoted", "rejected", "retired")
CHALLENGE_STATUSES = ("shadow", "promoted", "rejected")


class ResearchRunRow(Base):
    """One research job (walk-forward, optimisation, Monte Carlo, daily job) and its report."""

    __tablename__ = "research_runs"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('walk_forward', 'optimize', 'montecarlo', 'daily', 'retrain')", name="kind"
        ),
        CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="status"),
        Index("ix_research_runs_kind_started_at", "kind", "started_at"),
    )

    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    strategy: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    finished_at: Mapped[datetime | None] = mapped_column(UtcTimestamp)
    configuration: Mapped[dict[str, Any]] = mapped_column(JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class StrategyParameterSetRow(Base):
    """A strategy's parameters: a candidate, shadowed, promoted, rejected or retired."""

    __tablename__ = "strategy_parameter_sets"
    __table_args__ = (
        CheckConstraint(
            "status IN ('candidate', 'shadow', 'promoted', 'rejected', 'retired')", name="status"
        ),
        Index("ix_strategy_parameter_sets_strategy_symbol_status", "strategy", "symbol", "status"),
    )

    parameter_set_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(4))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    source_run_id: Mapped[str | None] = mapped_column(
        String(128), ForeignKey("research_runs.run_id")
    )
    validation: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    shadow_started_at: Mapped[datetime | None] = mapped_column(UtcTimestamp)
    shadow_until: Mapped[datetime | None] = mapped_column(UtcTimestamp)
    decided_at: Mapped[datetime | None] = mapped_column(UtcTimestamp)
    reason: Mapped[str | None] = mapped_column(Text)


class ShadowComparisonRow(Base):
    """A shadow period's verdict: the candidate against production on the same bars."""

    __tablename__ = "shadow_comparisons"

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    parameter_set_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("strategy_parameter_sets.parameter_set_id"), index=True
    )
    production_parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    ended_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    bars: Mapped[int] = mapped_column(Integer)
    candidate_metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    production_metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    score_difference: Mapped[float] = mapped_column(Float)
    candidate_better: Mapped[bool] = mapped_column(Boolean)
    decided_at: Mapped[datetime] = mapped_column(UtcTimestamp)


class ModelChallengeRow(Base):
    """A retrained model (challenger) against the production model (champion) of a symbol.

    Named ``research_*`` so the console's research tab lists it with the runs.
    """

    __tablename__ = "research_model_challenges"
    __table_args__ = (
        CheckConstraint("status IN ('shadow', 'promoted', 'rejected')", name="status"),
        Index("ix_research_model_challenges_symbol_status", "symbol", "timeframe", "status"),
    )

    challenge_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(4))
    trigger: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    champion_model_id: Mapped[str | None] = mapped_column(String(128))
    challenger_model_id: Mapped[str | None] = mapped_column(String(128))
    run_id: Mapped[str | None] = mapped_column(String(128), ForeignKey("research_runs.run_id"))
    requested_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    shadow_started_at: Mapped[datetime | None] = mapped_column(UtcTimestamp)
    shadow_until: Mapped[datetime | None] = mapped_column(UtcTimestamp)
    decided_at: Mapped[datetime | None] = mapped_column(UtcTimestamp)
    reason: Mapped[str | None] = mapped_column(Text)
    validation: Mapped[dict[str, Any]] = mapped_column(JSON)
    comparison: Mapped[dict[str, Any]] = mapped_column(JSON)
