"""Research commands: ``walk-forward``, ``optimize`` (and ``optimize --daily``), ``montecarlo``.

Mount with ``app.command("walk-forward")(walk_forward_command)`` and so on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tai_events.market import Timeframe

if TYPE_CHECKING:
    import pandas as pd

    from tai_optimizer.daily import DailySettings
    from tai_optimizer.evaluation import EvaluationSettings, ObjectiveSettings
    from tai_optimizer.search import StudySettings
    from tai_strategy.search_spaces import SearchSpace

# Optuna, pandas, the engine, the store and the bus are imported by the functions that use
# them: registering (and ``--help`` of) these commands imports none of them.

MEMORY_BUS_URL = "memory://"
"""``tai_bus.factory.MEMORY_URL``, spelt out so the option's default needs no bus import."""

console = Console(stderr=True)


class SelectorKind(StrEnum):
    """How each walk-forward window chooses its parameters."""

    TPE = "tpe"
    GRID = "grid"


def json_ready(value: Any) -> Any:
    """Return ``value`` as strict JSON values (see tai_optimizer.jsonvalues; numpy loads here)."""
    from tai_optimizer.jsonvalues import json_ready as strict  # noqa: PLC0415

    return strict(value)


def _write_json(report: dict[str, Any], path: Path) -> None:
    from tai_optimizer.research_reports import write_report  # noqa: PLC0415

    write_report(json.dumps(json_ready(report), indent=2, allow_nan=False), path)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/] {message}")
    return typer.Exit(code=2)


def data_or_sample(data: Path | None, symbol: str | None) -> Path:
    """Return ``--data``, or the bundled sample of the symbol (EURUSD by default)."""
    if data is not None:
        return data
    from tai_ingestion.samples import sample_path  # noqa: PLC0415

    name = symbol or "EURUSD"
    try:
        return sample_path(f"{name}.csv")
    except FileNotFoundError:
        raise ValueError(f"no --data given and no bundled sample for {name}") from None


def load_frame(data: Path, symbol: str | None, timeframe: Timeframe | None) -> pd.DataFrame:
    """Load and validate a CSV of bars into an OHLCV frame."""
    from tai_ingestion.bar_cache import default_cache  # noqa: PLC0415
    from tai_ingestion.replay import load_bars, symbol_from_file_name  # noqa: PLC0415

    name = symbol or symbol_from_file_name(data)
    replay = load_bars(data, symbol=name, timeframe=timeframe, cache=default_cache())
    frame = replay.frame()
    if len(frame) < 10:
        raise ValueError(f"{data} holds only {len(frame)} valid bars")
    return frame


@contextmanager
def _progress(description: str) -> Iterator[Progress]:
    with Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        yield progress


def store_run(
    database_url: str,
    *,
    kind: str,
    strategy: str,
    symbol: str,
    configuration: dict[str, Any],
    summary: dict[str, Any],
    report: dict[str, Any],
    started_at: datetime,
) -> str:
    """Store a finished research run with its report; return its id."""
    import asyncio  # noqa: PLC0415

    from tai_core.ids import deterministic_id  # noqa: PLC0415
    from tai_store.database import Store  # noqa: PLC0415
    from tai_store.research_repository import ResearchRepository  # noqa: PLC0415

    run_id = deterministic_id("run", kind, strategy, symbol, started_at.isoformat())

    async def save() -> None:
        store = Store(database_url)
        try:
            await store.migrate()
            async with store.transaction() as unit:
                repository = ResearchRepository(unit.session)
                await repository.start_run(
                    run_id,
                    kind=kind,
                    strategy=strategy,
                    symbol=symbol,
                    configuration=json_ready(configuration),
                    started_at=started_at,
                )
                await repository.finish_run(
                    run_id,
                    finished_at=datetime.now(UTC),
                    summary=json_ready(summary),
                    report=json_ready(report),
                )
        finally:
            await store.close()

    asyncio.run(save())
    return run_id


def _evaluation_settings(
    frame: pd.DataFrame,
    strategy: str,
    cash: float,
    quantity: float,
    commission: float,
    *,
    leverage: float = 1.0,
    symbol: str | None = None,
    timeframe: Timeframe | None = None,
) -> EvaluationSettings:
    from tai_optimizer.backtest.costs import CostModel  # noqa: PLC0415
    from tai_optimizer.evaluation import EvaluationSettings  # noqa: PLC0415
    from tai_quant.metrics import infer_periods_per_year  # noqa: PLC0415

    return EvaluationSettings(
        strategy=strategy,
        cash=cash,
        quantity=quantity,
        costs=CostModel(commission_rate=commission),
        periods_per_year=infer_periods_per_year(frame.index),
        leverage=leverage,
        symbol=symbol or "EURUSD",
        timeframe=timeframe or Timeframe.H1,
    )


def parse_range(text: str) -> tuple[int, int, int]:
    """Parse ``LOW:HIGH[:STEP]`` into integers; raise ValueError on anything else."""
    parts = [int(part) for part in text.split(":")]
    if len(parts) not in (2, 3):
        raise ValueError(f"range {text!r} is not LOW:HIGH[:STEP]")
    return (parts[0], parts[1], parts[2] if len(parts) == 3 else 1)


def research_space(strategy: str, fast: str | None, slow: str | None) -> SearchSpace:
    """Return the strategy's search space, with sma_cross bounds overridden when given."""
    from tai_strategy.search_spaces import (  # noqa: PLC0415
        IntegerDimension,
        search_space,
        sma_cross_search_space,
    )

    if strategy != "sma_cross" or (fast is None and slow is None):
        return search_space(strategy)
    defaults = sma_cross_search_space()
    bounds = {
        dimension.name: (dimension.low, dimension.high, dimension.step)
        for dimension in defaults.dimensions
        if isinstance(dimension, IntegerDimension)
    }
    return sma_cross_search_space(
        fast=parse_range(fast) if fast else bounds["fast"],
        slow=parse_range(slow) if slow else bounds["slow"],
    )


DataOption = Annotated[
    Path | None, typer.Option(help="CSV: unnamed timestamp column, then Open, High, Low, Close")
]
StrategyOption = Annotated[str, typer.Option(help="strategy name")]
CashOption = Annotated[float, typer.Option(help="starting cash")]
QuantityOption = Annotated[float, typer.Option(help="units per position")]
CommissionOption = Annotated[float, typer.Option(help="commission, fraction of notional")]
SymbolOption = Annotated[str | None, typer.Option(help="instrument (default: file name)")]
JsonOption = Annotated[Path | None, typer.Option("--json", help="write the JSON report")]
HtmlOption = Annotated[Path | None, typer.Option("--html", help="write the HTML report")]
FastOption = Annotated[
    str | None, typer.Option("--fast-range", help="sma_cross fast LOW:HIGH[:STEP]")
]
SlowOption = Annotated[
    str | None, typer.Option("--slow-range", help="sma_cross slow LOW:HIGH[:STEP]")
]
RecordOption = Annotated[
    str | None,
    typer.Option("--record", help="store the run and its report in this ledger database URL"),
]


def walk_forward_command(
    *,
    data: DataOption = None,
    strategy: StrategyOption = "sma_cross",
    train: Annotated[int, typer.Option(help="training bars per window")] = 720,
    test: Annotated[int, typer.Option(help="out-of-sample bars per window")] = 168,
    step: Annotated[int, typer.Option(help="bars between window starts")] = 168,
    gap: Annotated[int, typer.Option(help="bars between training and test")] = 24,
    anchored: Annotated[bool, typer.Option(help="grow training from the first bar")] = False,
    selector: Annotated[SelectorKind, typer.Option(help="in-sample search")] = SelectorKind.TPE,
    trials: Annotated[int, typer.Option(help="TPE trials per window")] = 40,
    seed: Annotated[int, typer.Option(help="sampler seed")] = 7,
    fast_range: FastOption = None,
    slow_range: SlowOption = None,
    cash: CashOption = 100_000.0,
    quantity: QuantityOption = 10_000.0,
    commission: CommissionOption = 0.0002,
    symbol: SymbolOption = None,
    timeframe: Annotated[Timeframe | None, typer.Option(help="bar timeframe")] = None,
    json_path: JsonOption = None,
    html_path: HtmlOption = None,
    record: RecordOption = None,
) -> None:
    """Walk-forward optimisation: in-sample search, out-of-sample trading, stitched equity."""
    from tai_ingestion.replay import ReplayFileError  # noqa: PLC0415
    from tai_optimizer.research_reports import walk_forward_html, write_report  # noqa: PLC0415
    from tai_optimizer.walkforward import (  # noqa: PLC0415
        GridSelector,
        Selector,
        TpeSelector,
        WalkForwardConfig,
        run_walk_forward,
    )

    started_at = datetime.now(UTC)
    try:
        data = data_or_sample(data, symbol)
        frame = load_frame(data, symbol, timeframe)
        settings = _evaluation_settings(frame, strategy, cash, quantity, commission)
        space = research_space(strategy, fast_range, slow_range)
        config = WalkForwardConfig(
            train_bars=train, test_bars=test, step_bars=step, gap_bars=gap, anchored=anchored
        )
    except (ValueError, KeyError, ReplayFileError, OSError) as error:
        raise _fail(str(error)) from error
    chooser: Selector = (
        TpeSelector(space, settings, trials=trials, seed=seed)
        if selector is SelectorKind.TPE
        else GridSelector(space, settings)
    )
    with _progress("walk-forward windows") as progress:
        task = progress.add_task("windows", total=None)
        try:
            result = run_walk_forward(
                frame,
                space=space,
                selector=chooser,
                config=config,
                settings=settings,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        except ValueError as error:
            raise _fail(str(error)) from error
    summary = result.summary()
    name = symbol or (data.stem.upper() if data else "")
    summary["symbol"] = name
    if json_path is not None:
        _write_json(summary, json_path)
    if html_path is not None:
        write_report(walk_forward_html(json_ready(summary)), html_path)
    headline = {
        "windows": len(result.windows),
        "in_sample": summary["in_sample"],
        "out_of_sample": {
            key: value for key, value in summary["out_of_sample"].items() if key != "times"
        },
        "walk_forward_efficiency": summary["walk_forward_efficiency"],
    }
    if record:
        headline["run_id"] = store_run(
            record,
            kind="walk_forward",
            strategy=strategy,
            symbol=name,
            configuration=summary["config"],
            summary=headline,
            report=summary,
            started_at=started_at,
        )
    typer.echo(json.dumps(json_ready(headline), indent=2))


def optimize_worker(
    data: str,
    symbol: str | None,
    timeframe: str | None,
    ranges: tuple[str | None, str | None],
    study: StudySettings,
    settings: EvaluationSettings,
    objective: ObjectiveSettings,
) -> int:
    """Run one worker process of a shared study; return the trials it left finished."""
    from tai_optimizer.search import run_study  # noqa: PLC0415

    frame = load_frame(Path(data), symbol, Timeframe(timeframe) if timeframe else None)
    result = run_study(
        frame,
        space=research_space(settings.strategy, *ranges),
        settings=settings,
        objective=objective,
        study_settings=study,
    )
    return len(result.trials)


def optimize_command(
    *,
    daily: Annotated[
        bool, typer.Option("--daily", help="run the daily optimizer job on the ledger")
    ] = False,
    data: DataOption = None,
    strategies: Annotated[
        list[str] | None,
        typer.Option(
            "--strategy",
            help="strategy to optimise (default sma_cross); with --daily repeatable, default all",
        ),
    ] = None,
    study_name: Annotated[str | None, typer.Option(help="study name (resumes if stored)")] = None,
    storage: Annotated[
        str | None,
        typer.Option(envvar="DATABASE_URL", help="database holding studies (and the ledger)"),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(help="finished trials the study should reach (default 100; --daily 60)"),
    ] = None,
    plan_trials: Annotated[
        int, typer.Option(help="--daily: ml_driven trade plans tried before retraining")
    ] = 12,
    jobs: Annotated[int, typer.Option(help="threads per worker (capped at cores; -1 all)")] = 1,
    workers: Annotated[int, typer.Option(help="worker processes sharing the study")] = 1,
    seed: Annotated[int, typer.Option(help="TPE seed")] = 42,
    fast_range: FastOption = None,
    slow_range: SlowOption = None,
    folds: Annotated[int, typer.Option(help="validation folds per trial")] = 4,
    holdout: Annotated[float, typer.Option(help="share of bars kept out of sample")] = 0.25,
    min_trades: Annotated[int, typer.Option(help="trades per fold below which it costs")] = 5,
    max_drawdown: Annotated[float, typer.Option(help="drawdown % beyond which it costs")] = 20.0,
    cash: CashOption = 100_000.0,
    quantity: QuantityOption = 10_000.0,
    commission: CommissionOption = 0.0002,
    leverage: Annotated[
        float | None,
        typer.Option(help="buying power per unit of equity (default 1; --daily: 30, FX)"),
    ] = None,
    symbol: SymbolOption = None,
    timeframe: Annotated[Timeframe | None, typer.Option(help="bar timeframe")] = None,
    amqp_url: Annotated[
        str, typer.Option(envvar="AMQP_URL", help="bus for --daily decisions and alerts")
    ] = MEMORY_BUS_URL,
    shadow_bars: Annotated[int, typer.Option(help="--daily: shadow period in bars")] = 168,
    always: Annotated[bool, typer.Option(help="--daily: re-optimise even without drift")] = False,
    json_path: JsonOption = None,
    html_path: HtmlOption = None,
) -> None:
    """Optuna search (resumable, shared by workers) with DSR, PBO and Monte Carlo; or --daily.

    With no --data the bundled sample of --symbol is searched. --daily runs the nightly job on
    the ledger for every strategy (or those named): drift check, re-optimisation, gates and
    shadow for the rule-based ones, the scheduled model retrain for ml_driven.
    """
    import multiprocessing  # noqa: PLC0415
    from dataclasses import asdict, replace  # noqa: PLC0415

    from tai_ingestion.replay import ReplayFileError  # noqa: PLC0415
    from tai_optimizer.cli import infer_timeframe  # noqa: PLC0415
    from tai_optimizer.daily import (  # noqa: PLC0415
        DailySettings,
        ReoptimisePolicy,
    )
    from tai_optimizer.evaluation import ObjectiveSettings  # noqa: PLC0415
    from tai_optimizer.search import StudySettings, build_report, run_study  # noqa: PLC0415

    if daily:
        if data is not None:
            raise _fail("--daily reads the ledger's bars (the bundled sample if it has none)")
        _run_daily(
            storage,
            amqp_url,
            tuple(strategies or ()),
            DailySettings(
                symbol=symbol or "EURUSD",
                timeframe=timeframe or Timeframe.H1,
                trials=trials or DailySettings.model_fields["trials"].default,
                model_plan_trials=plan_trials,
                seed=seed,
                jobs=jobs,
                folds=folds,
                holdout_fraction=holdout,
                study_storage_url=storage,
                shadow_bars=shadow_bars,
                reoptimise=ReoptimisePolicy.ALWAYS if always else ReoptimisePolicy.ON_DRIFT,
                cash=cash,
                quantity=quantity,
                leverage=leverage or DailySettings.model_fields["leverage"].default,
                commission_rate=commission,
                min_trades=min_trades,
            ),
            json_path,
        )
        return
    started_at = datetime.now(UTC)
    trials = trials or 100
    try:
        if strategies is not None and len(strategies) != 1:
            raise ValueError("a search optimises one --strategy (--daily takes several)")
        strategy = strategies[0] if strategies else "sma_cross"
        data = data_or_sample(data, symbol)
        if workers > 1 and not storage:
            raise ValueError("several workers need a shared study: set --storage / DATABASE_URL")
        frame = load_frame(data, symbol, timeframe)
        settings = _evaluation_settings(
            frame,
            strategy,
            cash,
            quantity,
            commission,
            leverage=leverage or 1.0,
            symbol=symbol or data.stem.upper(),
            timeframe=timeframe or infer_timeframe(data),
        )
        space = research_space(strategy, fast_range, slow_range)
        study_settings = StudySettings(
            name=study_name or f"{strategy}-{data.stem}-{started_at:%Y%m%dT%H%M%S}",
            storage_url=storage,
            trials=trials,
            seed=seed,
            jobs=jobs,
            folds=folds,
            holdout_fraction=holdout,
        )
    except (ValueError, KeyError, ReplayFileError, OSError) as error:
        raise _fail(str(error)) from error
    objective = ObjectiveSettings(min_trades=min_trades, max_drawdown_pct=max_drawdown)
    # Extra workers are separate processes sharing the study through the database.
    pool = multiprocessing.get_context("spawn").Pool(workers - 1) if workers > 1 else None
    try:
        helpers = [
            pool.apply_async(
                optimize_worker,
                (
                    str(data),
                    symbol,
                    timeframe.value if timeframe else None,
                    (fast_range, slow_range),
                    replace(study_settings, worker=worker),
                    settings,
                    objective,
                ),
            )
            for worker in range(1, workers)
            if pool is not None
        ]
        with _progress("optuna trials") as progress:
            task = progress.add_task("trials", total=trials)
            study = run_study(
                frame,
                space=space,
                settings=settings,
                objective=objective,
                study_settings=study_settings,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        for helper in helpers:
            helper.get()
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    _report_study(
        build_report(
            study, frame, space=space, settings=settings, study_settings=study_settings
        ).to_dict(),
        symbol=symbol or data.stem.upper(),
        strategy=strategy,
        storage=storage,
        configuration={"study": asdict(study_settings), "objective": asdict(objective)},
        started_at=started_at,
        json_path=json_path,
        html_path=html_path,
    )


def _report_study(
    report: dict[str, Any],
    *,
    symbol: str,
    strategy: str,
    storage: str | None,
    configuration: dict[str, Any],
    started_at: datetime,
    json_path: Path | None,
    html_path: Path | None,
) -> None:
    """Write a study's report, store its run when there is a ledger, print its headline."""
    from tai_optimizer.research_reports import optimisation_html, write_report  # noqa: PLC0415

    report["symbol"] = symbol
    if json_path is not None:
        _write_json(report, json_path)
    if html_path is not None:
        write_report(optimisation_html(json_ready(report)), html_path)
    headline = {
        key: report[key]
        for key in ("study", "best_parameters", "best_value", "deflated_sharpe", "pbo")
    }
    headline["out_of_sample"] = report["out_of_sample"]
    headline["trials"] = len(report["trials"])
    if storage:
        headline["run_id"] = store_run(
            storage,
            kind="optimize",
            strategy=strategy,
            symbol=symbol,
            configuration=configuration,
            summary={key: value for key, value in headline.items() if key != "run_id"},
            report=report,
            started_at=started_at,
        )
    typer.echo(json.dumps(json_ready(headline), indent=2))


def _run_daily(
    database_url: str | None,
    amqp_url: str,
    chosen: tuple[str, ...],
    settings: DailySettings,
    json_path: Path | None,
) -> None:
    """Run the nightly job for the chosen strategies (every one when none is named)."""
    import asyncio  # noqa: PLC0415

    from tai_bus.factory import create_bus  # noqa: PLC0415
    from tai_core.clock import SystemClock  # noqa: PLC0415
    from tai_optimizer.daily import ALL_STRATEGIES, run_daily_jobs  # noqa: PLC0415
    from tai_store.database import Store  # noqa: PLC0415

    unknown = sorted(set(chosen) - set(ALL_STRATEGIES))
    if unknown:
        raise _fail(f"unknown strategies {unknown}; known: {', '.join(ALL_STRATEGIES)}")
    strategies = chosen or ALL_STRATEGIES
    if not database_url:
        raise _fail("--daily needs the ledger: set --storage or DATABASE_URL")

    async def run() -> dict[str, Any]:
        clock = SystemClock()
        store = Store(database_url)
        bus = create_bus(amqp_url, "optimizer", clock=clock)
        await store.migrate()
        await bus.start()
        try:
            report = await run_daily_jobs(settings, strategies, store=store, bus=bus, clock=clock)
        finally:
            await bus.close()
            await store.close()
        return report.to_dict()

    result = asyncio.run(run())
    if json_path is not None:
        _write_json(result, json_path)
    typer.echo(json.dumps(json_ready(result), indent=2))
    if not result["succeeded"]:
        raise typer.Exit(code=1)


def montecarlo_command(
    *,
    data: DataOption = None,
    fast: Annotated[int, typer.Option(help="sma_cross fast length")] = 10,
    slow: Annotated[int, typer.Option(help="sma_cross slow length")] = 30,
    simulations: Annotated[int, typer.Option(help="paths per method")] = 1000,
    block: Annotated[int, typer.Option(help="returns bootstrap block length (bars)")] = 24,
    ruin: Annotated[float, typer.Option(help="loss (% of start) that counts as ruin")] = 50.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    cash: CashOption = 100_000.0,
    quantity: QuantityOption = 10_000.0,
    commission: CommissionOption = 0.0002,
    symbol: SymbolOption = None,
    timeframe: Annotated[Timeframe | None, typer.Option(help="bar timeframe")] = None,
    json_path: JsonOption = None,
    html_path: HtmlOption = None,
    record: RecordOption = None,
) -> None:
    """Monte Carlo on a backtest's trades (bootstrap, reshuffle) and returns (block bootstrap)."""
    import numpy as np  # noqa: PLC0415

    from tai_ingestion.replay import ReplayFileError  # noqa: PLC0415
    from tai_optimizer.evaluation import evaluate  # noqa: PLC0415
    from tai_optimizer.montecarlo import (  # noqa: PLC0415
        MonteCarloMethod,
        simulate_returns,
        simulate_trades,
    )
    from tai_optimizer.research_reports import monte_carlo_html, write_report  # noqa: PLC0415

    started_at = datetime.now(UTC)
    try:
        data = data_or_sample(data, symbol)
        frame = load_frame(data, symbol, timeframe)
        settings = _evaluation_settings(frame, "sma_cross", cash, quantity, commission)
        backtest = evaluate(frame, {"fast": fast, "slow": slow}, settings)
    except (ValueError, ReplayFileError, OSError) as error:
        raise _fail(str(error)) from error
    runs = []
    with _progress("monte carlo methods") as progress:
        task = progress.add_task("methods", total=3)
        returns = backtest.returns.to_numpy(np.float64)
        runs.append(
            simulate_returns(
                returns,
                initial_equity=cash,
                simulations=simulations,
                block_size=min(block, returns.size),
                seed=seed,
                ruin_loss_pct=ruin,
            ).summary()
        )
        progress.update(task, advance=1)
        pnls = np.asarray(backtest.trade_pnls, dtype=np.float64)
        for method in (MonteCarloMethod.TRADE_BOOTSTRAP, MonteCarloMethod.TRADE_RESHUFFLE):
            if pnls.size:
                runs.append(
                    simulate_trades(
                        pnls,
                        initial_equity=cash,
                        method=method,
                        simulations=simulations,
                        seed=seed,
                        ruin_loss_pct=ruin,
                    ).summary()
                )
            progress.update(task, advance=1)
    name = symbol or data.stem.upper()
    report = {
        "symbol": name,
        "parameters": {"fast": fast, "slow": slow},
        "backtest": backtest.summary(),
        "simulations": runs,
    }
    if json_path is not None:
        _write_json(report, json_path)
    if html_path is not None:
        write_report(monte_carlo_html(json_ready(report)), html_path)
    headline: dict[str, Any] = {
        run["method"]: {
            "probability_of_ruin": run["probability_of_ruin"],
            "final_equity": run["final_equity"],
            "max_drawdown_pct": run["max_drawdown_pct"],
        }
        for run in runs
    }
    if record:
        headline["run_id"] = store_run(
            record,
            kind="montecarlo",
            strategy="sma_cross",
            symbol=name,
            configuration={"fast": fast, "slow": slow, "simulations": simulations, "seed": seed},
            summary=dict(headline),
            report=report,
            started_at=started_at,
        )
    typer.echo(json.dumps(json_ready(headline), indent=2))
