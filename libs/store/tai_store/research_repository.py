"""Research repository: runs and reports, parameter sets, shadow comparisons, model challenges.

Use it inside a unit of work: ``ResearchRepository(unit.session)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tai_store.models_research import (
    CHALLENGE_STATUSES,
    PARAMETER_SET_STATUSES,
    RUN_KINDS,
    ModelChallengeRow,
    ResearchRunRow,
    ShadowComparisonRow,
    StrategyParameterSetRow,
)


class UnknownResearchRecordError(LookupError):
    """No run or parameter set has the requested id."""


@dataclass(frozen=True)
class ResearchRun:
    """A stored research run."""

    run_id: str
    kind: str
    strategy: str
    symbol: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    configuration: dict[str, Any]
    summary: dict[str, Any]
    report: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class ParameterSet:
    """A stored strategy parameter set and where it stands."""

    parameter_set_id: str
    strategy: str
    symbol: str
    timeframe: str
    parameters: dict[str, Any]
    status: str
    source_run_id: str | None
    validation: dict[str, Any]
    created_at: datetime
    shadow_started_at: datetime | None
    shadow_until: datetime | None
    decided_at: datetime | None
    reason: str | None


@dataclass(frozen=True)
class ShadowComparison:
    """A stored shadow verdict."""

    parameter_set_id: str
    production_parameters: dict[str, Any]
    started_at: datetime
    ended_at: datetime
    bars: int
    candidate_metrics: dict[str, Any]
    production_metrics: dict[str, Any]
    score_difference: float
    candidate_better: bool
    decided_at: datetime


@dataclass(frozen=True)
class ModelChallenge:
    """A challenger model against the champion of a symbol: shadowing, promoted or rejected."""

    challenge_id: str
    symbol: str
    timeframe: str
    trigger: str
    status: str
    champion_model_id: str | None
    challenger_model_id: str | None
    run_id: str | None
    requested_at: datetime
    shadow_started_at: datetime | None = None
    shadow_until: datetime | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    comparison: dict[str, Any] = field(default_factory=dict)


def _challenge(row: ModelChallengeRow) -> ModelChallenge:
    return ModelChallenge(
        challenge_id=row.challenge_id,
        symbol=row.symbol,
        timeframe=row.timeframe,
        trigger=row.trigger,
        status=row.status,
        champion_model_id=row.champion_model_id,
        challenger_model_id=row.challenger_model_id,
        run_id=row.run_id,
        requested_at=row.requested_at,
        shadow_started_at=row.shadow_started_at,
        shadow_until=row.shadow_until,
        decided_at=row.decided_at,
        reason=row.reason,
        validation=dict(row.validation),
        comparison=dict(row.comparison),
    )


def _run(row: ResearchRunRow) -> ResearchRun:
    return ResearchRun(
        row.run_id,
        row.kind,
        row.strategy,
        row.symbol,
        row.status,
        row.started_at,
        row.finished_at,
        dict(row.configuration),
        dict(row.summary),
        dict(row.report),
        row.error,
    )


def _parameter_set(row: StrategyParameterSetRow) -> ParameterSet:
    return ParameterSet(
        row.parameter_set_id,
        row.strategy,
        row.symbol,
        row.timeframe,
        dict(row.parameters),
        row.status,
        row.source_run_id,
        dict(row.validation),
        row.created_at,
        row.shadow_started_at,
        row.shadow_until,
        row.decided_at,
        row.reason,
    )


class ResearchRepository:
    """Store and query research runs, parameter sets and shadow comparisons."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # -- runs -------------------------------------------------------------------------------

    async def start_run(
        self,
        run_id: str,
        *,
        kind: str,
        strategy: str,
        symbol: str,
        configuration: dict[str, Any],
        started_at: datetime,
    ) -> None:
        """Record a run that has started."""
        if kind not in RUN_KINDS:
            raise ValueError(f"unknown run kind {kind!r}; one of {', '.join(RUN_KINDS)}")
        self._session.add(
            ResearchRunRow(
                run_id=run_id,
                kind=kind,
                strategy=strategy,
                symbol=symbol,
                status="running",
                started_at=started_at,
                configuration=configuration,
                summary={},
                report={},
            )
        )
        await self._session.flush()

    async def finish_run(
        self,
        run_id: str,
        *,
        finished_at: datetime,
        summary: dict[str, Any],
        report: dict[str, Any],
        error: str | None = None,
    ) -> None:
        """Store a run's report (succeeded) or its error (failed)."""
        row = await self._session.get(ResearchRunRow, run_id)
        if row is None:
            raise UnknownResearchRecordError(f"no research run {run_id!r}")
        row.status = "failed" if error else "succeeded"
        row.finished_at = finished_at
        row.summary = summary
        row.report = report
        row.error = error
        await self._session.flush()

    async def get_run(self, run_id: str) -> ResearchRun | None:
        """Return a run, or None."""
        row = await self._session.get(ResearchRunRow, run_id)
        return _run(row) if row is not None else None

    async def list_runs(self, kind: str | None = None, limit: int = 100) -> list[ResearchRun]:
        """Return the newest runs first (optionally of one kind)."""
        statement = select(ResearchRunRow)
        if kind is not None:
            statement = statement.where(ResearchRunRow.kind == kind)
        statement = statement.order_by(
            ResearchRunRow.started_at.desc(), ResearchRunRow.run_id
        ).limit(limit)
        return [_run(row) for row in (await self._session.scalars(statement)).all()]

    # -- parameter sets ---------------------------------------------------------------------

    async def register_parameter_set(
        self,
        parameter_set_id: str,
        *,
        strategy: str,
        symbol: str,
        timeframe: str,
        parameters: dict[str, Any],
        status: str,
        created_at: datetime,
        source_run_id: str | None = None,
        validation: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> ParameterSet:
        """Register a parameter set (a candidate, or the production baseline)."""
        _check_status(status)
        row = StrategyParameterSetRow(
            parameter_set_id=parameter_set_id,
            strategy=strategy,
            symbol=symbol,
            timeframe=timeframe,
            parameters=parameters,
            status=status,
            source_run_id=source_run_id,
            validation=validation or {},
            created_at=created_at,
            decided_at=created_at if status in ("promoted", "rejected") else None,
            reason=reason,
        )
        self._session.add(row)
        await self._session.flush()
        return _parameter_set(row)

    async def get_parameter_set(self, parameter_set_id: str) -> ParameterSet | None:
        """Return a parameter set, or None."""
        row = await self._session.get(StrategyParameterSetRow, parameter_set_id)
        return _parameter_set(row) if row is not None else None

    async def parameter_sets(
        self, strategy: str, symbol: str, status: str | None = None
    ) -> list[ParameterSet]:
        """Return a strategy's parameter sets for a symbol, oldest first."""
        statement = select(StrategyParameterSetRow).where(
            StrategyParameterSetRow.strategy == strategy, StrategyParameterSetRow.symbol == symbol
        )
        if status is not None:
            statement = statement.where(StrategyParameterSetRow.status == status)
        statement = statement.order_by(
            StrategyParameterSetRow.created_at, StrategyParameterSetRow.parameter_set_id
        )
        return [_parameter_set(row) for row in (await self._session.scalars(statement)).all()]

    async def production(self, strategy: str, symbol: str) -> ParameterSet | None:
        """Return the newest promoted parameter set, or None."""
        promoted = await self.parameter_sets(strategy, symbol, "promoted")
        return max(promoted, key=lambda item: item.decided_at or item.created_at, default=None)

    async def start_shadow(
        self, parameter_set_id: str, *, started_at: datetime, until: datetime
    ) -> None:
        """Mark a candidate as shadow-trading from ``started_at`` until ``until``."""
        row = await self._require(parameter_set_id)
        if row.status != "candidate":
            raise ValueError(f"only a candidate can start a shadow period, not {row.status}")
        row.status = "shadow"
        row.shadow_started_at = started_at
        row.shadow_until = until
        await self._session.flush()

    async def decide(
        self, parameter_set_id: str, *, status: str, decided_at: datetime, reason: str
    ) -> None:
        """Set a parameter set's final status (promoted, rejected or retired) and why."""
        _check_status(status)
        row = await self._require(parameter_set_id)
        row.status = status
        row.decided_at = decided_at
        row.reason = reason
        await self._session.flush()

    async def _require(self, parameter_set_id: str) -> StrategyParameterSetRow:
        row = await self._session.get(StrategyParameterSetRow, parameter_set_id)
        if row is None:
            raise UnknownResearchRecordError(f"no parameter set {parameter_set_id!r}")
        return row

    # -- shadow comparisons -----------------------------------------------------------------

    async def add_comparison(self, comparison: ShadowComparison) -> None:
        """Store a shadow verdict."""
        self._session.add(
            ShadowComparisonRow(
                parameter_set_id=comparison.parameter_set_id,
                production_parameters=comparison.production_parameters,
                started_at=comparison.started_at,
                ended_at=comparison.ended_at,
                bars=comparison.bars,
                candidate_metrics=comparison.candidate_metrics,
                production_metrics=comparison.production_metrics,
                score_difference=comparison.score_difference,
                candidate_better=comparison.candidate_better,
                decided_at=comparison.decided_at,
            )
        )
        await self._session.flush()

    async def comparisons(self, parameter_set_id: str) -> list[ShadowComparison]:
        """Return the verdicts of one parameter set, oldest first."""
        statement = (
            select(ShadowComparisonRow)
            .where(ShadowComparisonRow.parameter_set_id == parameter_set_id)
            .order_by(ShadowComparisonRow.id)
        )
        return [
            ShadowComparison(
                row.parameter_set_id,
                dict(row.production_parameters),
                row.started_at,
                row.ended_at,
                row.bars,
                dict(row.candidate_metrics),
                dict(row.production_metrics),
                row.score_difference,
                row.candidate_better,
                row.decided_at,
            )
            for row in (await self._session.scalars(statement)).all()
        ]

    # -- model challenges -------------------------------------------------------------------

    async def add_challenge(self, challenge: ModelChallenge) -> None:
        """Record a challenge (shadowing, or already decided)."""
        if challenge.status not in CHALLENGE_STATUSES:
            raise ValueError(f"unknown challenge status {challenge.status!r}")
        self._session.add(
            ModelChallengeRow(
                challenge_id=challenge.challenge_id,
                symbol=challenge.symbol,
                timeframe=challenge.timeframe,
                trigger=challenge.trigger,
                status=challenge.status,
                champion_model_id=challenge.champion_model_id,
                challenger_model_id=challenge.challenger_model_id,
                run_id=challenge.run_id,
                requested_at=challenge.requested_at,
                shadow_started_at=challenge.shadow_started_at,
                shadow_until=challenge.shadow_until,
                decided_at=challenge.decided_at,
                reason=challenge.reason,
                validation=challenge.validation,
                comparison=challenge.comparison,
            )
        )
        await self._session.flush()

    async def challenges(
        self, symbol: str, timeframe: str, status: str | None = None
    ) -> list[ModelChallenge]:
        """Return a symbol's challenges, oldest first (optionally of one status)."""
        statement = select(ModelChallengeRow).where(
            ModelChallengeRow.symbol == symbol, ModelChallengeRow.timeframe == timeframe
        )
        if status is not None:
            statement = statement.where(ModelChallengeRow.status == status)
        statement = statement.order_by(
            ModelChallengeRow.requested_at, ModelChallengeRow.challenge_id
        )
        return [_challenge(row) for row in (await self._session.scalars(statement)).all()]

    async def shadowing_challenges(self) -> list[ModelChallenge]:
        """Return every challenge still in its shadow period, soonest due first."""
        statement = (
            select(ModelChallengeRow)
            .where(ModelChallengeRow.status == "shadow")
            .order_by(ModelChallengeRow.shadow_until, ModelChallengeRow.challenge_id)
        )
        return [_challenge(row) for row in (await self._session.scalars(statement)).all()]

    async def decide_challenge(
        self,
        challenge_id: str,
        *,
        status: str,
        decided_at: datetime,
        reason: str,
        comparison: dict[str, Any],
    ) -> ModelChallenge:
        """Conclude a shadowing challenge: promoted or rejected, with why."""
        if status not in ("promoted", "rejected"):
            raise ValueError(f"a challenge ends promoted or rejected, not {status!r}")
        row = await self._session.get(ModelChallengeRow, challenge_id, with_for_update=True)
        if row is None:
            raise UnknownResearchRecordError(f"no model challenge {challenge_id!r}")
        if row.status != "shadow":
            raise ValueError(f"challenge {challenge_id} was already {row.status}")
        row.status = status
        row.decided_at = decided_at
        row.reason = reason
        row.comparison = comparison
        await self._session.flush()
        return _challenge(row)


def _check_status(status: str) -> None:
    if status not in PARAMETER_SET_STATUSES:
        raise ValueError(
            f"unknown parameter-set status {status!r}; one of {', '.join(PARAMETER_SET_STATUSES)}"
        )
