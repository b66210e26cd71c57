"""The daily optimizer job (``trading-ai optimize --daily``, a CronJob in production).

It takes any strategy (by default all five, one run each: :func:`run_daily_jobs`). For
ml_driven the daily run is the scheduled model retrain of :mod:`tai_optimizer.lifecycle`
(challenger, gates, shadow beside the champion, promotion). For the others each run does
one of:

1. A candidate is shadow-trading and its period is over: replay candidate and production on the
   period's bars in-process (paper broker, nothing published), compare, promote the candidate
   only if it did better (publish ``strategy.params.updated``), else reject it.
2. A candidate is still shadowing: nothing to decide yet.
3. Otherwise: read the last ``lookback_days`` of live/paper performance from the ledger,
   detect drift, and when drifted (or always, by policy) re-optimise on stored history with
   Optuna, validate the best parameters against the gates (out-of-sample Sharpe and drawdown,
   Monte Carlo 95 % drawdown, deflated Sharpe), register the candidate and start its shadow
   period (or reject it with the failed gates).

Every run is stored with its report and ends with ``ResearchRunFinished`` (and an
``alert.info``); the bars come from the ledger, or from the bundled sample when the ledger
holds too few (said in the report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats  # type: ignore[import-untyped]

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_core.ids import deterministic_id
from tai_events.alerts import AlertRaised, Severity
from tai_events.base import Message
from tai_events.control import ConfigureStrategy
from tai_events.market import Timeframe
from tai_events.research import ResearchRunFinished, ResearchRunStatus
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.evaluation import EvaluationSettings, ObjectiveSettings, evaluate
from tai_optimizer.history import frame_from_bars, latest_history, stored_bars
from tai_optimizer.jsonvalues import json_ready
from tai_optimizer.lifecycle import LifecycleAction, LifecycleSettings, ModelLifecycle
from tai_optimizer.search import StudySettings, build_report, run_study
from tai_optimizer.shadow import ShadowPolicy, ShadowVerdict, compare, run_shadow, shadow_metrics
from tai_quant.metrics import drawdown_statistics, infer_periods_per_year, sharpe_ratio
from tai_store.database import Store
from tai_store.research_repository import ParameterSet, ResearchRepository, ShadowComparison
from tai_strategy.registry import STRATEGY_TYPES
from tai_strategy.search_spaces import SearchSpace, search_space, sma_cross_search_space

PRODUCER = "optimizer"
ALL_STRATEGIES = tuple(STRATEGY_TYPES)
"""What the nightly job optimises unless told otherwise: every strategy."""
MODEL_STRATEGY = "ml_driven"
"""The strategy whose daily run retrains its model instead of searching parameters."""


class ReoptimisePolicy(StrEnum):
    """When the daily job searches for new parameters."""

    ON_DRIFT = "on_drift"
    ALWAYS = "always"


class Gates(BaseModel):
    """What a candidate must show before it may shadow-trade."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_out_of_sample_sharpe: float = Field(default=0.5, description="annualised, holdout")
    max_out_of_sample_drawdown_pct: float = Field(default=10.0, gt=0)
    max_monte_carlo_drawdown_pct: float = Field(
        default=15.0, gt=0, description="95th percentile of bootstrapped max drawdown"
    )
    min_deflated_sharpe: float = Field(default=0.5, ge=0, le=1)


class DriftThresholds(BaseModel):
    """When recent performance counts as drifted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_live_sharpe: float = 0.0
    max_live_drawdown_pct: float = Field(default=5.0, gt=0)
    max_return_gap_pct: float = Field(
        default=1.0, gt=0, description="live vs replayed-backtest return, percentage points"
    )
    min_regime_p_value: float = Field(
        default=0.001, ge=0, le=1, description="KS test, recent vs earlier returns"
    )


class DailySettings(BaseModel):
    """Everything the daily job needs to know (documented defaults are the live defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str = "sma_cross"
    symbol: str = "EURUSD"
    timeframe: Timeframe = Timeframe.H1
    account: str = "paper"
    data_fallback: bool = Field(
        default=True, description="use the bundled sample when the ledger holds too few bars"
    )
    min_history_bars: int = Field(default=300, ge=100)
    lookback_days: int = Field(default=30, ge=1)
    history_bars: int = Field(default=3000, ge=100, description="bars the re-optimisation uses")
    trials: int = Field(default=60, ge=1)
    seed: int = 42
    jobs: int = 1
    folds: int = Field(default=3, ge=1)
    holdout_fraction: float = Field(default=0.25, gt=0, lt=1)
    study_storage_url: str | None = Field(
        default=None, description="ledger-style URL for the Optuna study; None = in memory"
    )
    shadow_bars: int = Field(default=168, ge=2, description="length of the shadow period")
    reoptimise: ReoptimisePolicy = ReoptimisePolicy.ON_DRIFT
    cash: float = Field(default=100_000.0, gt=0)
    quantity: float = Field(default=10_000.0, gt=0)
    leverage: float = Field(
        default=30.0, ge=1, description="buying power per unit of equity (FX margin 3.33 %)"
    )
    commission_rate: float = Field(default=0.0002, ge=0, lt=0.1)
    baseline_parameters: dict[str, Any] | None = None
    """Production's parameters until the optimizer has promoted any (None: the strategy's
    defaults — the centre of its search space; sma_cross: fast 10, slow 30)."""
    model_training_bars: int = Field(
        default=3_000, ge=500, description="ml_driven: the challenger model's window"
    )
    model_shadow_bars: int = Field(
        default=120, ge=2, description="ml_driven: the challenger's shadow period in bars"
    )
    model_plan_trials: int = Field(
        default=12, ge=0, description="ml_driven: trade plans tried before the retrain (0: keep)"
    )
    search_fast: tuple[int, int, int] = (3, 60, 1)
    search_slow: tuple[int, int, int] = (10, 200, 2)
    min_trades: int = Field(default=5, ge=0)
    gates: Gates = Field(default_factory=Gates)
    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    min_sharpe_improvement: float = 0.0
    max_extra_drawdown_pct: float = 2.0

    def space(self) -> SearchSpace:
        """Return the strategy's search space with this job's bounds."""
        if self.strategy != "sma_cross":
            return search_space(self.strategy)
        return sma_cross_search_space(fast=self.search_fast, slow=self.search_slow)

    def baseline(self) -> dict[str, Any]:
        """Return production's parameters before any promotion."""
        if self.baseline_parameters is not None:
            return dict(self.baseline_parameters)
        centre = self.space().centre
        return dict(centre) if centre is not None else {"fast": 10, "slow": 30}

    def lifecycle(self) -> LifecycleSettings:
        """Return the model lifecycle settings of ml_driven's daily run."""
        return LifecycleSettings(
            symbol=self.symbol,
            timeframe=self.timeframe,
            training_bars=self.model_training_bars,
            min_training_bars=min(self.model_training_bars, 1_000),
            data_fallback=self.data_fallback,
            folds=self.folds,
            plan_trials=self.model_plan_trials,
            plan_seed=self.seed,
            shadow_bars=self.model_shadow_bars,
            cash=self.cash,
            leverage=self.leverage,
            commission_rate=self.commission_rate,
            min_sharpe_improvement=self.min_sharpe_improvement,
            max_extra_drawdown_pct=self.max_extra_drawdown_pct,
        )


class DailyAction(StrEnum):
    """What a daily run did."""

    NO_DRIFT = "no_drift"
    REJECTED_BY_GATES = "rejected_by_gates"
    SHADOW_STARTED = "shadow_started"
    SHADOWING = "shadowing"
    PROMOTED = "promoted"
    NOT_PROMOTED = "not_promoted"


@dataclass(frozen=True)
class DailyOutcome:
    """The result of one daily run."""

    run_id: str
    action: DailyAction
    parameter_set_id: str | None
    report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Drift:
    """Recent performance, what production should have done, and the drift verdict."""

    live: dict[str, Any]
    expected: dict[str, Any]
    regime_p_value: float | None
    reasons: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        """Return True when any drift reason was found."""
        return bool(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "drifted": self.drifted,
            "reasons": self.reasons,
            "notes": self.notes,
            "live": self.live,
            "expected": self.expected,
            "regime_p_value": self.regime_p_value,
        }


def _equity_metrics(equity: pd.Series, periods_per_year: float) -> dict[str, Any]:
    if len(equity) < 2 or not bool((equity > 0).all()):
        return {"bars": len(equity), "sharpe": None, "return_pct": None, "max_drawdown_pct": None}
    sharpe = sharpe_ratio(equity.pct_change().iloc[1:], periods_per_year)
    return {
        "bars": len(equity),
        "sharpe": sharpe if sharpe is not None else 0.0,
        "return_pct": (float(equity.iloc[-1]) / float(equity.iloc[0]) - 1.0) * 100.0,
        "max_drawdown_pct": drawdown_statistics(equity).max_drawdown_pct,
    }


def detect_drift(
    live_equity: pd.Series,
    history: pd.DataFrame,
    recent_start: datetime,
    production: dict[str, Any],
    settings: DailySettings,
    evaluation: EvaluationSettings,
) -> Drift:
    """Compare recent live performance with thresholds, a replay and the earlier regime."""
    thresholds = settings.drift
    periods = evaluation.periods_per_year
    live = _equity_metrics(live_equity, periods)
    start = int(history.index.searchsorted(pd.Timestamp(recent_start)))
    warm_up = min(settings.space().warm_up(production), start)
    recent = history.iloc[start - warm_up :]
    expected: dict[str, Any] = {}
    if len(recent) - warm_up >= 2:
        replay = evaluate(recent, production, evaluation, warm_up_bars=warm_up)
        expected = _equity_metrics(replay.equity, periods)
    reasons: list[str] = []
    notes: list[str] = []
    measured = live if live["sharpe"] is not None else expected
    if live["sharpe"] is None:
        notes.append("no live performance in the ledger for the lookback; judged on a replay")
    if measured.get("sharpe") is not None and measured["sharpe"] < thresholds.min_live_sharpe:
        reasons.append(f"Sharpe {measured['sharpe']:.3f} < {thresholds.min_live_sharpe}")
    drawdown = measured.get("max_drawdown_pct")
    if drawdown is not None and drawdown > thresholds.max_live_drawdown_pct:
        reasons.append(f"drawdown {drawdown:.2f}% > {thresholds.max_live_drawdown_pct}%")
    if live["return_pct"] is not None and expected.get("return_pct") is not None:
        gap = abs(live["return_pct"] - expected["return_pct"])
        if gap > thresholds.max_return_gap_pct:
            reasons.append(f"live return differs from the replay by {gap:.2f} points")
    earlier = history["Close"].iloc[: max(0, start)].pct_change().dropna().to_numpy()
    later = history["Close"].iloc[start:].pct_change().dropna().to_numpy()
    p_value: float | None = None
    if earlier.size >= 20 and later.size >= 20:
        p_value = float(stats.ks_2samp(earlier, later).pvalue)
        if p_value < thresholds.min_regime_p_value:
            reasons.append(f"return distribution changed (KS p = {p_value:.2e})")
    return Drift(live, expected, p_value, reasons, notes)


def check_gates(report: dict[str, Any], gates: Gates) -> list[dict[str, Any]]:
    """Return every gate with its value, threshold and verdict."""
    out_of_sample = report.get("out_of_sample") or {}
    checks = [
        (
            "out_of_sample_sharpe",
            out_of_sample.get("sharpe"),
            gates.min_out_of_sample_sharpe,
            "min",
        ),
        (
            "out_of_sample_drawdown_pct",
            out_of_sample.get("max_drawdown_pct"),
            gates.max_out_of_sample_drawdown_pct,
            "max",
        ),
        (
            "monte_carlo_drawdown_95_pct",
            report["monte_carlo"]["returns"]["max_drawdown_pct"]["p95"],
            gates.max_monte_carlo_drawdown_pct,
            "max",
        ),
        (
            "deflated_sharpe",
            report["deflated_sharpe"]["deflated_sharpe"],
            gates.min_deflated_sharpe,
            "min",
        ),
    ]
    results: list[dict[str, Any]] = []
    for name, value, threshold, kind in checks:
        finite = value is not None and math.isfinite(float(value))
        passed = finite and (
            float(value) >= threshold if kind == "min" else float(value) <= threshold
        )
        results.append({"gate": name, "value": value, kind: threshold, "passed": bool(passed)})
    return results


class DailyOptimizer:
    """One daily run against the ledger, publishing decisions on the bus."""

    def __init__(
        self, settings: DailySettings, *, store: Store, bus: MessageBus, clock: Clock
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.clock = clock

    def _costs(self) -> CostModel:
        return CostModel(commission_rate=self.settings.commission_rate)

    def _full_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Return the tuned parameters (sma_cross: with its fixed quantity)."""
        tuned = {dimension.name for dimension in self.settings.space().dimensions}
        chosen = {key: value for key, value in parameters.items() if key in tuned}
        if self.settings.strategy == "sma_cross":
            chosen = {
                "fast": int(parameters["fast"]),
                "slow": int(parameters["slow"]),
                "quantity": self.settings.quantity,
            }
        return chosen

    def _tuned(self, parameters: dict[str, Any]) -> dict[str, Any]:
        tuned = {dimension.name for dimension in self.settings.space().dimensions}
        return {key: value for key, value in parameters.items() if key in tuned}

    async def run(self) -> DailyOutcome:
        """Run once: conclude a shadow, or detect drift and maybe start a new one."""
        if self.settings.strategy == MODEL_STRATEGY:
            return await self._run_model()
        now = self.clock.now()
        settings = self.settings
        run_id = deterministic_id("daily", settings.strategy, settings.symbol, now.isoformat())
        async with self.store.transaction() as unit:
            await ResearchRepository(unit.session).start_run(
                run_id,
                kind="daily",
                strategy=settings.strategy,
                symbol=settings.symbol,
                configuration=settings.model_dump(mode="json"),
                started_at=now,
            )
        try:
            outcome, events = await self._decide(now, run_id)
        except Exception as error:
            async with self.store.transaction() as unit:
                await ResearchRepository(unit.session).finish_run(
                    run_id, finished_at=self.clock.now(), summary={}, report={}, error=repr(error)
                )
            await self._alert(Severity.WARNING, f"daily optimizer failed: {error!r}", run_id, now)
            await self._finished(run_id, None, error=error)
            raise
        async with self.store.transaction() as unit:
            await ResearchRepository(unit.session).finish_run(
                run_id,
                finished_at=self.clock.now(),
                summary={
                    "action": outcome.action.value,
                    "parameter_set_id": outcome.parameter_set_id,
                },
                report=outcome.report,
            )
        # Effects are committed first; then the world is told.
        for event in events:
            await self.bus.publish(event)
        await self._alert(
            Severity.INFO,
            f"daily optimizer {settings.strategy} {settings.symbol}: {outcome.action.value}",
            run_id,
            now,
            outcome.parameter_set_id,
        )
        await self._finished(run_id, outcome)
        return outcome

    async def _finished(
        self, run_id: str, outcome: DailyOutcome | None, *, error: Exception | None = None
    ) -> None:
        """Publish the run's end: its decision, or its error."""
        settings = self.settings
        report = outcome.report if outcome is not None else {}
        await self.bus.publish(
            ResearchRunFinished(
                run_id=run_id,
                kind="daily",
                subject=settings.strategy,
                symbol=settings.symbol,
                status=ResearchRunStatus.FAILED if error else ResearchRunStatus.SUCCEEDED,
                outcome=outcome.action.value if outcome is not None else None,
                reason=str(report.get("decision", ""))[:2000],
                summary=(
                    {"parameter_set_id": outcome.parameter_set_id}
                    if outcome is not None and outcome.parameter_set_id
                    else {}
                ),
                error=f"{error!r}"[:2000] if error else None,
                finished_at=self.clock.now(),
            )
        )

    async def _run_model(self) -> DailyOutcome:
        """ml_driven: the scheduled retrain (conclude a due shadow, or train a challenger)."""
        lifecycle = ModelLifecycle(
            self.settings.lifecycle(), store=self.store, bus=self.bus, clock=self.clock
        )
        outcome = await lifecycle.daily()
        action = {
            LifecycleAction.SHADOW_STARTED: DailyAction.SHADOW_STARTED,
            LifecycleAction.SHADOWING: DailyAction.SHADOWING,
            LifecycleAction.PROMOTED: DailyAction.PROMOTED,
        }.get(outcome.action)
        if action is None:
            concluded = "comparison" in outcome.report
            action = DailyAction.NOT_PROMOTED if concluded else DailyAction.REJECTED_BY_GATES
        report = {**outcome.report, "decision": outcome.reason}
        return DailyOutcome(outcome.run_id, action, outcome.challenger_model_id, report)

    async def _alert(
        self,
        severity: Severity,
        message: str,
        run_id: str,
        now: datetime,
        parameter_set_id: str | None = None,
    ) -> None:
        details = {"run_id": run_id}
        if parameter_set_id:
            details["parameter_set_id"] = parameter_set_id
        await self.bus.publish(
            AlertRaised(
                severity=severity,
                source=PRODUCER,
                code="daily_optimizer",
                message=message[:2000],
                details=details,
                raised_at=now,
            )
        )

    async def _production(self, repository: ResearchRepository, now: datetime) -> ParameterSet:
        settings = self.settings
        current = await repository.production(settings.strategy, settings.symbol)
        if current is not None:
            return current
        # The first run records the baseline, so every later decision has a predecessor.
        return await repository.register_parameter_set(
            deterministic_id("params", settings.strategy, settings.symbol, "baseline"),
            strategy=settings.strategy,
            symbol=settings.symbol,
            timeframe=settings.timeframe.value,
            parameters=self._full_parameters(settings.baseline()),
            status="promoted",
            created_at=now,
            reason="baseline: the production parameters before any optimisation",
        )

    async def _decide(self, now: datetime, run_id: str) -> tuple[DailyOutcome, list[Message]]:
        settings = self.settings
        async with self.store.transaction() as unit:
            repository = ResearchRepository(unit.session)
            production = await self._production(repository, now)
            shadows = await repository.parameter_sets(settings.strategy, settings.symbol, "shadow")
        if shadows:
            shadow = shadows[-1]
            if shadow.shadow_until is not None and now < shadow.shadow_until:
                return (
                    DailyOutcome(
                        run_id,
                        DailyAction.SHADOWING,
                        shadow.parameter_set_id,
                        {"shadow_until": shadow.shadow_until.isoformat()},
                    ),
                    [],
                )
            return await self._conclude(shadow, production, now, run_id)
        return await self._reoptimise(production, now, run_id), []

    async def _reoptimise(
        self, production: ParameterSet, now: datetime, run_id: str
    ) -> DailyOutcome:
        settings = self.settings
        history = await latest_history(
            self.store,
            settings.symbol,
            settings.timeframe,
            end=now,
            bars=settings.history_bars,
            minimum=settings.min_history_bars,
            fallback=settings.data_fallback,
        )
        frame = history.frame
        evaluation = EvaluationSettings(
            strategy=settings.strategy,
            cash=settings.cash,
            quantity=settings.quantity,
            costs=self._costs(),
            periods_per_year=infer_periods_per_year(frame.index),
            leverage=settings.leverage,
            symbol=settings.symbol,
            timeframe=settings.timeframe,
        )
        since = now - timedelta(days=settings.lookback_days)
        async with self.store.transaction() as unit:
            snapshots = await unit.snapshots.list(settings.account, start=since, end=now)
        live_equity = pd.Series(
            [snapshot.equity for snapshot in snapshots],
            index=pd.DatetimeIndex([snapshot.taken_at for snapshot in snapshots]),
            dtype=np.float64,
        )
        production_parameters = self._tuned(production.parameters)
        drift = detect_drift(live_equity, frame, since, production_parameters, settings, evaluation)
        report: dict[str, Any] = {
            "data_source": history.source,
            "bars": len(history.bars),
            "production": production.parameters,
            "drift": drift.to_dict(),
        }
        if not drift.drifted and settings.reoptimise is ReoptimisePolicy.ON_DRIFT:
            return DailyOutcome(run_id, DailyAction.NO_DRIFT, None, report)
        space = settings.space()
        study_settings = StudySettings(
            name=f"daily-{settings.strategy}-{settings.symbol}-{now:%Y%m%dT%H%M}",
            storage_url=settings.study_storage_url,
            trials=settings.trials,
            seed=settings.seed,
            jobs=settings.jobs,
            folds=settings.folds,
            holdout_fraction=settings.holdout_fraction,
        )
        objective = ObjectiveSettings(min_trades=settings.min_trades)
        study = run_study(
            frame,
            space=space,
            settings=evaluation,
            objective=objective,
            study_settings=study_settings,
        )
        optimisation = build_report(
            study, frame, space=space, settings=evaluation, study_settings=study_settings
        ).to_dict()
        optimisation.pop("trials")
        gates = check_gates(optimisation, settings.gates)
        report["optimisation"] = optimisation
        report["gates"] = gates
        candidate = self._full_parameters(optimisation["best_parameters"])
        parameter_set_id = deterministic_id(
            "params",
            settings.strategy,
            settings.symbol,
            run_id,
            *(f"{key}={candidate[key]}" for key in sorted(candidate)),
        )
        failed = [gate["gate"] for gate in gates if not gate["passed"]]
        same = self._tuned(candidate) == production_parameters
        async with self.store.transaction() as unit:
            repository = ResearchRepository(unit.session)
            await repository.register_parameter_set(
                parameter_set_id,
                strategy=settings.strategy,
                symbol=settings.symbol,
                timeframe=settings.timeframe.value,
                parameters=candidate,
                status="candidate",
                created_at=now,
                source_run_id=run_id,
                validation=json_ready({"gates": gates, "drift": drift.to_dict()}),
            )
            if failed or same:
                reason = f"failed gates: {', '.join(failed)}" if failed else "same as production"
                await repository.decide(
                    parameter_set_id, status="rejected", decided_at=now, reason=reason
                )
                report["decision"] = reason
                return DailyOutcome(run_id, DailyAction.REJECTED_BY_GATES, parameter_set_id, report)
            until = now + settings.shadow_bars * settings.timeframe.duration
            await repository.start_shadow(parameter_set_id, started_at=now, until=until)
        report["decision"] = f"shadow trading until {until.isoformat()}"
        return DailyOutcome(run_id, DailyAction.SHADOW_STARTED, parameter_set_id, report)

    async def _conclude(
        self, shadow: ParameterSet, production: ParameterSet, now: datetime, run_id: str
    ) -> tuple[DailyOutcome, list[Message]]:
        settings = self.settings
        started = shadow.shadow_started_at or shadow.created_at
        until = shadow.shadow_until or now
        space = settings.space()
        warm_up = (
            max(
                space.warm_up(self._tuned(shadow.parameters)),
                space.warm_up(self._tuned(production.parameters)),
            )
            + 1
        )
        history = (await stored_bars(self.store, settings.symbol, settings.timeframe, end=started))[
            -warm_up:
        ]
        bars = await stored_bars(
            self.store, settings.symbol, settings.timeframe, start=started, end=until
        )
        if len(bars) < 2:
            return await self._no_shadow_data(run_id, shadow, (started, until), len(bars), now)
        periods = infer_periods_per_year(frame_from_bars(history + bars).index)
        costs = self._costs()

        def replay(parameters: dict[str, Any]) -> dict[str, Any]:
            result = run_shadow(
                parameters,
                history,
                bars,
                cash=settings.cash,
                costs=costs,
                strategy=settings.strategy,
                leverage=settings.leverage,
            )
            return shadow_metrics(result, periods)

        candidate = replay(shadow.parameters)
        incumbent = replay(production.parameters)
        verdict: ShadowVerdict = compare(
            candidate,
            incumbent,
            ShadowPolicy(settings.min_sharpe_improvement, settings.max_extra_drawdown_pct),
            len(bars),
        )
        events: list[Message] = []
        async with self.store.transaction() as unit:
            repository = ResearchRepository(unit.session)
            await repository.add_comparison(
                ShadowComparison(
                    parameter_set_id=shadow.parameter_set_id,
                    production_parameters=production.parameters,
                    started_at=started,
                    ended_at=until,
                    bars=len(bars),
                    candidate_metrics=candidate,
                    production_metrics=incumbent,
                    score_difference=verdict.score_difference,
                    candidate_better=verdict.candidate_better,
                    decided_at=now,
                )
            )
            if verdict.candidate_better:
                await repository.decide(
                    shadow.parameter_set_id,
                    status="promoted",
                    decided_at=now,
                    reason=verdict.reason,
                )
                await repository.decide(
                    production.parameter_set_id,
                    status="retired",
                    decided_at=now,
                    reason=f"replaced by {shadow.parameter_set_id}",
                )
                parameters = {
                    key: value
                    for key, value in shadow.parameters.items()
                    if isinstance(value, int | float)
                }
                # The command re-parameterises the live strategy (it re-primes its indicators
                # and answers with StrategyParametersUpdated, the authority on its state); it
                # never switches a strategy on or off: the nightly job tunes every strategy,
                # operators choose which ones trade. ResearchRunFinished records the decision.
                events.append(
                    ConfigureStrategy(
                        strategy=settings.strategy,
                        enabled=None,
                        parameters=parameters,
                        requested_by=f"{PRODUCER}:{run_id}",
                        requested_at=now,
                        reason=verdict.reason[:2000],
                    )
                )
            else:
                await repository.decide(
                    shadow.parameter_set_id,
                    status="rejected",
                    decided_at=now,
                    reason=verdict.reason,
                )
        action = DailyAction.PROMOTED if verdict.candidate_better else DailyAction.NOT_PROMOTED
        report: dict[str, Any] = {
            "decision": verdict.reason,
            "shadow": {
                "parameter_set_id": shadow.parameter_set_id,
                "candidate_parameters": shadow.parameters,
                "production_parameters": production.parameters,
                "started_at": started.isoformat(),
                "ended_at": until.isoformat(),
                "bars": len(bars),
                "candidate": candidate,
                "production": incumbent,
                "sharpe_difference": verdict.score_difference,
                "decision": verdict.reason,
            },
        }
        return DailyOutcome(run_id, action, shadow.parameter_set_id, report), events

    async def _no_shadow_data(
        self,
        run_id: str,
        shadow: ParameterSet,
        period: tuple[datetime, datetime],
        count: int,
        now: datetime,
    ) -> tuple[DailyOutcome, list[Message]]:
        """Reject a candidate whose shadow period has no stored bars to compare on."""
        started, until = period
        reason = (
            f"the shadow period {started.isoformat()} .. {until.isoformat()} holds {count} "
            "stored bars: nothing to compare on"
        )
        async with self.store.transaction() as unit:
            await ResearchRepository(unit.session).decide(
                shadow.parameter_set_id, status="rejected", decided_at=now, reason=reason
            )
        report = {"decision": reason, "shadow": {"parameter_set_id": shadow.parameter_set_id}}
        return (
            DailyOutcome(run_id, DailyAction.NOT_PROMOTED, shadow.parameter_set_id, report),
            [],
        )


@dataclass(frozen=True)
class DailyReport:
    """What a nightly run of every strategy did."""

    outcomes: dict[str, DailyOutcome]
    failures: dict[str, str]

    @property
    def succeeded(self) -> bool:
        """Return True when no strategy's run failed."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready report (each strategy's action and decision)."""
        report: dict[str, Any] = json_ready(
            {
                "strategies": {
                    name: {
                        "run_id": outcome.run_id,
                        "action": outcome.action.value,
                        "parameter_set_id": outcome.parameter_set_id,
                        "decision": outcome.report.get("decision"),
                        "data_source": outcome.report.get("data_source"),
                    }
                    for name, outcome in self.outcomes.items()
                },
                "failures": self.failures,
                "succeeded": self.succeeded,
            }
        )
        return report


async def run_daily_jobs(
    base: DailySettings,
    strategies: tuple[str, ...],
    *,
    store: Store,
    bus: MessageBus,
    clock: Clock,
) -> DailyReport:
    """Run the daily job for each strategy in turn; a failure does not stop the others."""
    outcomes: dict[str, DailyOutcome] = {}
    failures: dict[str, str] = {}
    for strategy in strategies:
        settings = base.model_copy(update={"strategy": strategy})
        try:
            outcomes[strategy] = await DailyOptimizer(
                settings, store=store, bus=bus, clock=clock
            ).run()
        except Exception as error:
            failures[strategy] = repr(error)[:2000]
    return DailyReport(outcomes, failures)
