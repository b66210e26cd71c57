"""The model lifecycle: retrain a challenger, gate it, shadow it beside the champion, decide.

A retrain starts on a schedule (the daily job) or when inference reports drift or expiry
(``ModelRetrainingRequested``). It:

1. trains a *challenger* on the latest window of stored bars (the bundled sample on a fresh
   installation, said in the report) for the champion's kind and trade plan — or, when the
   daily job searches plans (``plan_trials``), for the best plan of an Optuna study over
   ml_driven's search space — and evaluates it walk-forward (purged, embargoed folds);
2. gates it on its own out-of-sample record: the plan's trades must show a Sharpe of at least
   ``min_walk_forward_sharpe`` over ``min_walk_forward_trades``, a *deflated* Sharpe (every
   model tried for the symbol counts as a trial: the study's plans, the single-model baseline
   and every earlier challenger) of at least ``min_deflated_sharpe``, and a probability of
   backtest overfitting of at most ``max_pbo`` (the study's CSCV, else the challenger against
   its single-model baseline). A challenger that fails is recorded with the failed gates and
   the champion stays;
3. registers a passing challenger (a candidate) and shadows it for ``shadow_bars`` bars: when
   they have closed, ml_driven is replayed on those bars — unseen by either model — once on
   the challenger's predictions and once on the champion's (live strategy, risk engine and
   paper broker in-process; nothing routed);
4. promotes the challenger only when its shadow Sharpe beats the champion's by more than
   ``min_sharpe_improvement`` without a drawdown more than ``max_extra_drawdown_pct`` worse:
   the registry switches and ``ModelPromoted`` is published (inference hot-reloads it);
   otherwise the challenge is rejected with the reason and the champion stays.

Every step is a stored research run (kind ``retrain``) and a challenge row in the ledger, and
ends with a ``ResearchRunFinished`` on the bus (operators are notified of promotions and
failures).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_core.ids import deterministic_id
from tai_events.alerts import AlertRaised, Severity
from tai_events.market import Timeframe
from tai_events.ml import DEFAULT_TRADE_PLAN, RetrainingTrigger, TradePlan
from tai_events.research import ResearchRunFinished, ResearchRunStatus
from tai_inference.model import ServingModel
from tai_inference.registry import promote_model, register_model
from tai_inference.training import ALGORITHMS, Algorithm, TrainingOptions, train_model
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.evaluation import EvaluationSettings, ObjectiveSettings
from tai_optimizer.history import latest_history, stored_bars
from tai_optimizer.jsonvalues import json_ready
from tai_optimizer.overfitting import (
    deflated_sharpe_ratio,
    per_period_sharpe,
    probability_of_backtest_overfitting,
)
from tai_optimizer.search import StudySettings, build_report, run_study
from tai_optimizer.shadow import ShadowPolicy, compare, run_model_shadow, shadow_metrics
from tai_quant.metrics import infer_periods_per_year
from tai_store.database import Store
from tai_store.ml_repository import MlModelRepository, ModelRecord
from tai_store.research_repository import ModelChallenge, ResearchRepository
from tai_strategy.search_spaces import search_space

PRODUCER = "optimizer"
STRATEGY = "ml_driven"
"""The strategy whose models the lifecycle manages (research runs are filed under it)."""


class ModelGates(BaseModel):
    """What a challenger's walk-forward record must show before it may shadow."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_walk_forward_sharpe: float = Field(
        default=0.0, description="annualised Sharpe of the plan's out-of-sample trades"
    )
    min_walk_forward_trades: int = Field(default=5, ge=0)
    min_deflated_sharpe: float = Field(
        default=0.95, ge=0, le=1, description="P(true Sharpe > the best of the trials by luck)"
    )
    max_pbo: float = Field(default=0.5, ge=0, le=1)


class LifecycleSettings(BaseModel):
    """How models of one symbol are retrained, judged and promoted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = "EURUSD"
    timeframe: Timeframe = Timeframe.H1
    training_bars: int = Field(default=3_000, ge=500, description="the challenger's window")
    min_training_bars: int = Field(
        default=1_000, ge=300, description="fewer stored bars: use the bundled sample"
    )
    data_fallback: bool = Field(default=True, description="bundled sample when the ledger lacks")
    folds: int = Field(default=3, ge=1)
    max_rounds: int = Field(default=400, ge=10)
    default_algorithm: Algorithm = "xgboost"
    """The challenger's kind when there is no champion (else the champion's)."""
    default_per_regime: bool = False
    plan_trials: int = Field(
        default=0, ge=0, description="Optuna trials over ml_driven's plans (0: keep the plan)"
    )
    plan_seed: int = 42
    shadow_bars: int = Field(default=120, ge=2, description="length of the shadow period")
    history_bars: int = Field(default=500, ge=50, description="bars priming a shadow replay")
    cash: float = Field(default=100_000.0, gt=0)
    leverage: float = Field(default=30.0, ge=1)
    commission_rate: float = Field(default=0.0002, ge=0, lt=0.1)
    gates: ModelGates = Field(default_factory=ModelGates)
    min_sharpe_improvement: float = Field(
        default=0.0, description="the margin by which the challenger's shadow Sharpe must win"
    )
    max_extra_drawdown_pct: float = Field(default=2.0, ge=0)


class LifecycleAction:
    """What a lifecycle run did (string constants: they are ResearchRunFinished outcomes)."""

    SHADOW_STARTED = "shadow_started"
    SHADOWING = "shadowing"
    REJECTED = "rejected"
    PROMOTED = "promoted"


@dataclass(frozen=True)
class LifecycleOutcome:
    """One lifecycle run's decision, its challenge and report."""

    run_id: str
    action: str
    reason: str
    challenge_id: str | None = None
    challenger_model_id: str | None = None
    report: dict[str, Any] = field(default_factory=dict)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class ModelLifecycle:
    """Retrains, gates, shadows and promotes the models of one symbol and timeframe."""

    def __init__(
        self, settings: LifecycleSettings, *, store: Store, bus: MessageBus, clock: Clock
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.clock = clock

    # -- entry points -----------------------------------------------------------------------

    async def retrain(
        self,
        trigger: RetrainingTrigger,
        reason: str,
        *,
        model_id: str | None = None,
    ) -> LifecycleOutcome:
        """Train a challenger on the latest window; gate it; start its shadow or reject it."""

        async def challenge(run_id: str) -> LifecycleOutcome:
            return await self._challenge(run_id, trigger)

        return await self._run(
            "retrain", trigger, {"reason": reason, "model_id": model_id}, challenge
        )

    async def conclude_due(self) -> list[LifecycleOutcome]:
        """Decide every challenge of this symbol whose shadow period is over."""
        now = self.clock.now()
        async with self.store.transaction() as unit:
            shadowing = await ResearchRepository(unit.session).challenges(
                self.settings.symbol, self.settings.timeframe.value, "shadow"
            )
        outcomes = []
        for challenge in shadowing:
            if challenge.shadow_until is not None and challenge.shadow_until <= now:

                async def decide(run_id: str, due: ModelChallenge = challenge) -> LifecycleOutcome:
                    return await self._conclude(run_id, due)

                outcomes.append(
                    await self._run(
                        "conclude",
                        RetrainingTrigger(challenge.trigger),
                        {"challenge_id": challenge.challenge_id},
                        decide,
                    )
                )
        return outcomes

    async def daily(self) -> LifecycleOutcome:
        """The scheduled step: conclude a due shadow, wait for a running one, else retrain."""
        concluded = await self.conclude_due()
        if concluded:
            return concluded[-1]
        async with self.store.transaction() as unit:
            shadowing = await ResearchRepository(unit.session).challenges(
                self.settings.symbol, self.settings.timeframe.value, "shadow"
            )
        if shadowing:
            current = shadowing[-1]
            until = current.shadow_until.isoformat() if current.shadow_until else "?"

            async def wait(run_id: str) -> LifecycleOutcome:
                return LifecycleOutcome(
                    run_id=run_id,
                    action=LifecycleAction.SHADOWING,
                    reason=f"challenger {current.challenger_model_id} shadows until {until}",
                    challenge_id=current.challenge_id,
                    challenger_model_id=current.challenger_model_id,
                    report={"shadow_until": until},
                )

            return await self._run(
                "wait", RetrainingTrigger.SCHEDULE, {"challenge_id": current.challenge_id}, wait
            )
        return await self.retrain(RetrainingTrigger.SCHEDULE, "the daily scheduled retrain")

    # -- one stored, published run ----------------------------------------------------------

    async def _run(
        self,
        step: str,
        trigger: RetrainingTrigger,
        configuration: dict[str, Any],
        body: Callable[[str], Awaitable[LifecycleOutcome]],
    ) -> LifecycleOutcome:
        now = self.clock.now()
        settings = self.settings
        run_id = deterministic_id(
            "retrain",
            step,
            trigger.value,
            settings.symbol,
            settings.timeframe.value,
            now.isoformat(),
            str(configuration.get("challenge_id") or configuration.get("model_id") or ""),
        )
        async with self.store.transaction() as unit:
            await ResearchRepository(unit.session).start_run(
                run_id,
                kind="retrain",
                strategy=STRATEGY,
                symbol=settings.symbol,
                configuration={
                    "step": step,
                    "trigger": trigger.value,
                    **configuration,
                    "settings": settings.model_dump(mode="json"),
                },
                started_at=now,
            )
        try:
            outcome = await body(run_id)
        except Exception as error:
            async with self.store.transaction() as unit:
                await ResearchRepository(unit.session).finish_run(
                    run_id, finished_at=self.clock.now(), summary={}, report={}, error=repr(error)
                )
            await self._publish_failure(run_id, step, error)
            raise
        summary = {
            "step": step,
            "trigger": trigger.value,
            "action": outcome.action,
            "reason": outcome.reason[:500],
            "challenge_id": outcome.challenge_id,
            "challenger_model_id": outcome.challenger_model_id,
        }
        async with self.store.transaction() as unit:
            await ResearchRepository(unit.session).finish_run(
                run_id,
                finished_at=self.clock.now(),
                summary=summary,
                report=json_ready(outcome.report),
            )
        await self.bus.publish(
            ResearchRunFinished(
                run_id=run_id,
                kind="retrain",
                subject=(outcome.challenger_model_id or STRATEGY)[:128],
                symbol=settings.symbol,
                status=ResearchRunStatus.SUCCEEDED,
                outcome=outcome.action,
                reason=outcome.reason[:2000],
                summary={
                    "step": step,
                    "trigger": trigger.value,
                    "challenge_id": outcome.challenge_id or "",
                    "challenger_model_id": outcome.challenger_model_id or "",
                },
                finished_at=self.clock.now(),
            )
        )
        return outcome

    async def _publish_failure(self, run_id: str, step: str, error: Exception) -> None:
        now = self.clock.now()
        message = f"model {step} for {self.settings.symbol} failed: {error!r}"[:2000]
        await self.bus.publish(
            ResearchRunFinished(
                run_id=run_id,
                kind="retrain",
                subject=STRATEGY,
                symbol=self.settings.symbol,
                status=ResearchRunStatus.FAILED,
                error=message,
                finished_at=now,
            )
        )
        await self.bus.publish(
            AlertRaised(
                severity=Severity.WARNING,
                source=PRODUCER,
                code="model_retraining_failed",
                message=message,
                details={"run_id": run_id, "symbol": self.settings.symbol},
                raised_at=now,
            )
        )

    # -- retrain: train, evaluate, gate -----------------------------------------------------

    async def _champion(self) -> ModelRecord | None:
        async with self.store.transaction() as unit:
            return await MlModelRepository(unit.session).production(
                self.settings.symbol, self.settings.timeframe.value
            )

    async def _challenge(self, run_id: str, trigger: RetrainingTrigger) -> LifecycleOutcome:
        settings = self.settings
        now = self.clock.now()
        async with self.store.transaction() as unit:
            research = ResearchRepository(unit.session)
            shadowing = await research.challenges(
                settings.symbol, settings.timeframe.value, "shadow"
            )
            earlier = await research.challenges(settings.symbol, settings.timeframe.value)
        if shadowing:
            current = shadowing[-1]
            return LifecycleOutcome(
                run_id,
                LifecycleAction.SHADOWING,
                f"challenger {current.challenger_model_id} is already shadowing; not retrained",
                current.challenge_id,
                current.challenger_model_id,
            )
        champion = await self._champion()
        history = await latest_history(
            self.store,
            settings.symbol,
            settings.timeframe,
            end=now,
            bars=settings.training_bars,
            minimum=settings.min_training_bars,
            fallback=settings.data_fallback,
        )
        frame = history.frame
        plan, search = await self._plan(frame, champion)
        options = self._options(champion, plan)
        result = await asyncio.to_thread(train_model, frame, options, created_at=now)
        record = result.record
        tried = [
            float(value)
            for item in earlier
            if (value := item.validation.get("per_period_sharpe")) is not None
        ]
        gates, evidence = self._gates(result.metrics, result.out_of_sample_returns, search, tried)
        failed = [gate["gate"] for gate in gates if not gate["passed"]]
        challenge_id = deterministic_id("challenge", run_id, record.model_id)
        validation = {
            "data_source": history.source,
            "bars": len(history.bars),
            "first_bar": history.bars[0].opened_at.isoformat(),
            "last_bar": history.bars[-1].opened_at.isoformat(),
            "trade_plan": plan.model_dump(),
            "kind": options.kind,
            "gates": gates,
            **evidence,
            "walk_forward": result.metrics.get("walk_forward", {}).get("trading"),
            "baselines": {
                name: section.get("walk_forward", {}).get("trading")
                for name, section in result.metrics.get("baselines", {}).items()
            },
            "plan_search": search,
        }
        report = {"challenge_id": challenge_id, "model_id": record.model_id, **validation}
        champion_id = champion.model_id if champion is not None else None
        if failed:
            reason = f"challenger {record.model_id} failed its gates: {', '.join(failed)}"
            async with self.store.transaction() as unit:
                await ResearchRepository(unit.session).add_challenge(
                    ModelChallenge(
                        challenge_id=challenge_id,
                        symbol=settings.symbol,
                        timeframe=settings.timeframe.value,
                        trigger=trigger.value,
                        status="rejected",
                        champion_model_id=champion_id,
                        challenger_model_id=None,
                        run_id=run_id,
                        requested_at=now,
                        decided_at=now,
                        reason=reason,
                        validation=json_ready(validation),
                    )
                )
            return LifecycleOutcome(
                run_id, LifecycleAction.REJECTED, reason, challenge_id, None, report
            )
        await register_model(self.store, record)
        until = now + settings.shadow_bars * settings.timeframe.duration
        reason = (
            f"challenger {record.model_id} passed its gates; shadowing beside "
            f"{champion_id or 'no champion'} until {until.isoformat()}"
        )
        async with self.store.transaction() as unit:
            await ResearchRepository(unit.session).add_challenge(
                ModelChallenge(
                    challenge_id=challenge_id,
                    symbol=settings.symbol,
                    timeframe=settings.timeframe.value,
                    trigger=trigger.value,
                    status="shadow",
                    champion_model_id=champion_id,
                    challenger_model_id=record.model_id,
                    run_id=run_id,
                    requested_at=now,
                    shadow_started_at=now,
                    shadow_until=until,
                    reason=reason,
                    validation=json_ready(validation),
                )
            )
        return LifecycleOutcome(
            run_id, LifecycleAction.SHADOW_STARTED, reason, challenge_id, record.model_id, report
        )

    def _options(self, champion: ModelRecord | None, plan: TradePlan) -> TrainingOptions:
        settings = self.settings
        algorithm: Algorithm = settings.default_algorithm
        per_regime = settings.default_per_regime
        if champion is not None:
            kind = str(champion.parameters.get("algorithm", champion.algorithm))
            algorithm = next((name for name in ALGORITHMS if name == kind), algorithm)
            per_regime = bool(champion.parameters.get("per_regime", False))
        return TrainingOptions(
            algorithm=algorithm,
            per_regime=per_regime,
            symbol=settings.symbol,
            timeframe=settings.timeframe.value,
            plan=plan,
            folds=settings.folds,
            max_rounds=settings.max_rounds,
            commission=settings.commission_rate / 2,
        )

    async def _plan(
        self, frame: Any, champion: ModelRecord | None
    ) -> tuple[TradePlan, dict[str, Any] | None]:
        """Return the plan to train for: the champion's, or the best of a study over plans."""
        settings = self.settings
        current = champion.trade_plan() if champion is not None else DEFAULT_TRADE_PLAN
        if settings.plan_trials <= 0:
            return current, None
        space = search_space(STRATEGY)
        evaluation = EvaluationSettings(
            strategy=STRATEGY,
            cash=settings.cash,
            costs=CostModel(commission_rate=settings.commission_rate),
            periods_per_year=infer_periods_per_year(frame.index),
            leverage=settings.leverage,
            symbol=settings.symbol,
            timeframe=settings.timeframe,
        )
        study_settings = StudySettings(
            name=f"plans-{settings.symbol}-{self.clock.now():%Y%m%dT%H%M%S}",
            trials=settings.plan_trials,
            seed=settings.plan_seed,
            folds=min(settings.folds, 2),
            startup_trials=min(10, settings.plan_trials),
        )

        def study() -> dict[str, Any]:
            run = run_study(
                frame,
                space=space,
                settings=evaluation,
                objective=ObjectiveSettings(),
                study_settings=study_settings,
            )
            report = build_report(
                run,
                frame,
                space=space,
                settings=evaluation,
                study_settings=study_settings,
                simulations=200,
            ).to_dict()
            report["trial_per_period_sharpes"] = [
                value
                for trial in run.trials
                if (value := trial.user_attrs.get("per_period_sharpe")) is not None
            ]
            report.pop("trials")
            return report

        report = await asyncio.to_thread(study)
        return TradePlan.model_validate(report["best_parameters"]), report

    def _gates(
        self,
        metrics: dict[str, Any],
        returns: dict[str, Any],
        search: dict[str, Any] | None,
        earlier_sharpes: list[float],
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Return every gate with its value and verdict, and the DSR/PBO evidence."""
        gates = self.settings.gates
        trading = metrics.get("walk_forward", {}).get("trading", {})
        model_returns = np.asarray(returns.get("model", np.zeros(0)), dtype=np.float64)
        trials = [per_period_sharpe(model_returns), *earlier_sharpes]
        if "single_model" in returns:
            trials.append(per_period_sharpe(np.asarray(returns["single_model"])))
        if search is not None:
            trials += [float(value) for value in search.get("trial_per_period_sharpes", [])]
        deflated = deflated_sharpe_ratio(model_returns, np.asarray(trials)).to_dict()
        pbo: float | None = None
        pbo_source = None
        if search is not None and search.get("pbo"):
            pbo, pbo_source = _finite(search["pbo"]["pbo"]), "plan study (CSCV)"
        elif "single_model" in returns and model_returns.size >= 64:
            matrix = np.column_stack([model_returns, np.asarray(returns["single_model"])])
            pbo = probability_of_backtest_overfitting(matrix, 16).probability
            pbo_source = "challenger vs its single-model baseline (CSCV)"
        checks = [
            ("walk_forward_sharpe", trading.get("sharpe"), gates.min_walk_forward_sharpe, "min"),
            ("walk_forward_trades", trading.get("trades"), gates.min_walk_forward_trades, "min"),
            ("deflated_sharpe", deflated["deflated_sharpe"], gates.min_deflated_sharpe, "min"),
        ]
        if pbo is not None:
            checks.append(("pbo", pbo, gates.max_pbo, "max"))
        results: list[dict[str, Any]] = []
        for name, raw, threshold, kind in checks:
            value = _finite(raw)
            passed = value is not None and (
                value >= threshold if kind == "min" else value <= threshold
            )
            results.append({"gate": name, "value": value, kind: threshold, "passed": passed})
        evidence = {
            "deflated_sharpe": deflated,
            "pbo": pbo,
            "pbo_source": pbo_source,
            "per_period_sharpe": per_period_sharpe(model_returns),
            "trials_counted": len(trials),
        }
        return results, evidence

    # -- conclude: shadow replay and decision -----------------------------------------------

    async def _conclude(self, run_id: str, challenge: ModelChallenge) -> LifecycleOutcome:
        settings = self.settings
        now = self.clock.now()
        started = challenge.shadow_started_at or challenge.requested_at
        until = challenge.shadow_until or now
        bars = await stored_bars(
            self.store, settings.symbol, settings.timeframe, start=started, end=until
        )
        async with self.store.transaction() as unit:
            registry = MlModelRepository(unit.session)
            challenger = (
                await registry.get(challenge.challenger_model_id)
                if challenge.challenger_model_id
                else None
            )
            champion = await registry.production(settings.symbol, settings.timeframe.value)
        if challenger is None:
            return await self._decide(
                run_id, challenge, "rejected", "the challenger is no longer registered", {}
            )
        if champion is not None and champion.model_id == challenger.model_id:
            return await self._decide(
                run_id, challenge, "promoted", "the challenger was promoted meanwhile", {}
            )
        if len(bars) < 2:
            return await self._decide(
                run_id,
                challenge,
                "rejected",
                f"the shadow period {started.isoformat()} .. {until.isoformat()} holds "
                f"{len(bars)} stored bars: nothing to compare on",
                {"bars": len(bars)},
            )
        history = (await stored_bars(self.store, settings.symbol, settings.timeframe, end=started))[
            -settings.history_bars :
        ]
        periods = infer_periods_per_year(
            pd.DatetimeIndex([bar.opened_at for bar in [*history, *bars]])
        )
        costs = CostModel(commission_rate=settings.commission_rate)

        def replay(record: ModelRecord) -> dict[str, Any]:
            result = run_model_shadow(
                ServingModel.from_record(record),
                settings.symbol,
                history,
                bars,
                cash=settings.cash,
                costs=costs,
                leverage=settings.leverage,
            )
            return shadow_metrics(result, periods)

        candidate = await asyncio.to_thread(replay, challenger)
        comparison: dict[str, Any] = {
            "bars": len(bars),
            "started_at": started.isoformat(),
            "ended_at": until.isoformat(),
            "challenger": candidate,
        }
        if champion is None:
            return await self._decide(
                run_id,
                challenge,
                "promoted",
                f"no champion to beat; the challenger's shadow Sharpe was "
                f"{candidate['sharpe']:.3f}",
                comparison,
            )
        incumbent = await asyncio.to_thread(replay, champion)
        verdict = compare(
            candidate,
            incumbent,
            ShadowPolicy(settings.min_sharpe_improvement, settings.max_extra_drawdown_pct),
            len(bars),
        )
        comparison.update(
            champion=incumbent,
            champion_model_id=champion.model_id,
            sharpe_difference=verdict.score_difference,
        )
        return await self._decide(
            run_id,
            challenge,
            "promoted" if verdict.candidate_better else "rejected",
            verdict.reason.replace("shadow Sharpe", "challenger shadow Sharpe"),
            comparison,
        )

    async def _decide(
        self,
        run_id: str,
        challenge: ModelChallenge,
        status: str,
        reason: str,
        comparison: dict[str, Any],
    ) -> LifecycleOutcome:
        now = self.clock.now()
        already_production = reason == "the challenger was promoted meanwhile"
        async with self.store.transaction() as unit:
            await ResearchRepository(unit.session).decide_challenge(
                challenge.challenge_id,
                status=status,
                decided_at=now,
                reason=reason,
                comparison=json_ready(comparison),
            )
        if status == "promoted" and challenge.challenger_model_id and not already_production:
            # Committed first, then announced: inference hot-reloads on ModelPromoted.
            await promote_model(
                self.store,
                self.bus,
                challenge.challenger_model_id,
                clock=self.clock,
                promoted_by=f"{PRODUCER}:{run_id}"[:128],
            )
        action = LifecycleAction.PROMOTED if status == "promoted" else LifecycleAction.REJECTED
        return LifecycleOutcome(
            run_id,
            action,
            reason,
            challenge.challenge_id,
            challenge.challenger_model_id,
            {
                "challenge_id": challenge.challenge_id,
                "decision": status,
                "reason": reason,
                "comparison": comparison,
            },
        )
