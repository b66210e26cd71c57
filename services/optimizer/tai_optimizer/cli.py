"""``trading-ai backtest``: run a strategy over a CSV of bars and report the results.

Mount with ``app.command("backtest")(backtest_command)`` on the trading-ai Typer app.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tai_events.market import Timeframe
from tai_events.ml import DEFAULT_TRADE_PLAN

if TYPE_CHECKING:
    from tai_ingestion.replay import ReplayData
    from tai_optimizer.backtest.sizing import Sizer
    from tai_optimizer.backtest.tape import BarFeed
    from tai_strategy.base import Strategy

# The engine, pandas and the loader are imported when the command runs, not when it is
# registered: ``trading-ai backtest --help`` stays well under a second.


class SizingMethod(StrEnum):
    """How the backtest sizes positions."""

    ALL_IN = "all-in"
    STRATEGY = "strategy"
    FIXED_FRACTION = "fixed-fraction"
    ATR_RISK = "atr-risk"
    KELLY = "kelly"


def _sizer(method: SizingMethod, value: float) -> Sizer | None:
    from tai_optimizer.backtest.sizing import (  # noqa: PLC0415
        AllInWholeUnits,
        AtrRisk,
        FixedFraction,
        FractionalKelly,
    )

    if method is SizingMethod.ALL_IN:
        return AllInWholeUnits()
    if method is SizingMethod.FIXED_FRACTION:
        return FixedFraction(value)
    if method is SizingMethod.ATR_RISK:
        return AtrRisk(value)
    if method is SizingMethod.KELLY:
        return FractionalKelly(fraction=value)
    return None


def _feed(replay: ReplayData, symbol: str) -> BarFeed:
    """Return the loaded bars with their tape, tabulated from the loader's columns."""
    from tai_optimizer.backtest.tape import BarFeed, BarTape  # noqa: PLC0415

    columns = replay.columns
    tape = None if columns is None else BarTape.of_columns(symbol, columns.times(), columns.close)
    return BarFeed(replay.bars, tape)


@dataclass(frozen=True, slots=True)
class RetrainingRequest:
    """The backtest options of a prediction strategy's sliding-window retraining."""

    every: int
    window: int
    model: str
    per_regime: bool
    take_profit_atr: float
    stop_loss_atr: float
    horizon: int
    threshold: float


def _runner(built: Strategy, strategy: str, retraining: RetrainingRequest) -> Strategy:
    """Return what the backtest runs: the strategy, behind a retrained model if it trades
    predictions (ml_driven)."""
    from tai_events.ml import TradePlan  # noqa: PLC0415
    from tai_inference.training import ALGORITHMS, TrainingOptions  # noqa: PLC0415
    from tai_optimizer.backtest.retraining import (  # noqa: PLC0415
        PredictingStrategy,
        RetrainingSchedule,
    )
    from tai_strategy.base import PredictionConsumer  # noqa: PLC0415

    if not isinstance(built, PredictionConsumer):
        if retraining.every:
            raise ValueError(f"--retrain-every is for prediction strategies; {strategy} is not")
        return built
    if retraining.every <= 0:
        raise ValueError(
            f"{strategy} trades model predictions: give --retrain-every N to train its "
            "models on a sliding window as the backtest runs"
        )
    if retraining.model not in ALGORITHMS:
        raise ValueError(f"--model must be one of {', '.join(ALGORITHMS)}")
    plan = TradePlan(
        take_profit_atr=retraining.take_profit_atr,
        stop_loss_atr=retraining.stop_loss_atr,
        max_horizon_bars=retraining.horizon,
        probability_threshold=retraining.threshold,
    )
    algorithm = next(name for name in ALGORITHMS if name == retraining.model)
    return PredictingStrategy(
        built,
        schedule=RetrainingSchedule(
            every=retraining.every,
            window=retraining.window,
            options=TrainingOptions(
                algorithm=algorithm, per_regime=retraining.per_regime, plan=plan
            ),
        ),
    )


def infer_timeframe(path: Path) -> Timeframe:
    """Return the timeframe whose duration is the median spacing of the file's timestamps."""
    import pandas as pd  # noqa: PLC0415

    index = pd.DatetimeIndex(pd.to_datetime(pd.read_csv(path, index_col=0, nrows=500).index))
    if len(index) < 2:
        raise ValueError(f"{path} has fewer than two rows")
    spacing = pd.Timedelta(index.to_series().diff().median())
    for timeframe in Timeframe:
        if spacing == timeframe.duration:
            return timeframe
    if spacing >= Timeframe.D1.duration:
        return Timeframe.D1  # daily data skips weekends and holidays
    raise ValueError(f"cannot infer the timeframe of {path} (median spacing {spacing})")


def backtest_command(
    *,
    strategy: Annotated[str, typer.Option(help="strategy name, e.g. sma_cross")],
    data: Annotated[
        Path,
        typer.Option(help="CSV: unnamed timestamp column, then Open, High, Low, Close, Volume"),
    ],
    cash: Annotated[float, typer.Option(help="starting cash")],
    commission: Annotated[
        float, typer.Option(help="commission as a fraction of each fill's notional")
    ],
    param: Annotated[
        list[str] | None, typer.Option(help="strategy parameter KEY=VALUE (repeatable)")
    ] = None,
    symbol: Annotated[str | None, typer.Option(help="instrument (default: file name)")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the JSON report")] = None,
    html_path: Annotated[Path | None, typer.Option("--html", help="write the HTML report")] = None,
    timeframe: Annotated[
        Timeframe | None, typer.Option(help="bar timeframe (default: inferred from the file)")
    ] = None,
    sizing: Annotated[
        SizingMethod, typer.Option(help="position sizing; 'strategy' = its own quantity")
    ] = SizingMethod.ALL_IN,
    sizing_value: Annotated[
        float,
        typer.Option(help="fraction for fixed-fraction / atr-risk (risk) / kelly (Kelly share)"),
    ] = 0.5,
    slippage_bps: Annotated[float, typer.Option(help="adverse slippage, basis points")] = 0.0,
    spread: Annotated[float, typer.Option(help="full bid-ask spread, price units")] = 0.0,
    commission_per_trade: Annotated[float, typer.Option(help="fixed commission per fill")] = 0.0,
    commission_per_unit: Annotated[float, typer.Option(help="commission per unit traded")] = 0.0,
    leverage: Annotated[float, typer.Option(help="buying power per unit of equity")] = 1.0,
    live_risk: Annotated[
        bool,
        typer.Option(
            help="apply the live risk limits and circuit breakers (RISK_* settings, defaults "
            "as deployed) instead of research-wide limits: the sizes live risk would approve"
        ),
    ] = False,
    retrain_every: Annotated[
        int,
        typer.Option(help="prediction strategies: retrain the model every N bars (sliding window)"),
    ] = 0,
    train_window: Annotated[
        int, typer.Option(help="prediction strategies: bars each model learns from")
    ] = 2_000,
    model: Annotated[
        str, typer.Option(help="prediction strategies: xgboost, lightgbm or ensemble")
    ] = "xgboost",
    per_regime: Annotated[
        bool, typer.Option(help="prediction strategies: one model per HMM regime")
    ] = False,
    take_profit_atr: Annotated[
        float, typer.Option(help="trade plan the models learn: target in ATRs")
    ] = DEFAULT_TRADE_PLAN.take_profit_atr,
    stop_loss_atr: Annotated[
        float, typer.Option(help="trade plan the models learn: stop in ATRs")
    ] = DEFAULT_TRADE_PLAN.stop_loss_atr,
    horizon: Annotated[
        int, typer.Option(help="trade plan the models learn: bars before the time exit")
    ] = DEFAULT_TRADE_PLAN.max_horizon_bars,
    threshold: Annotated[
        float, typer.Option(help="trade plan the models learn: minimum class probability")
    ] = DEFAULT_TRADE_PLAN.probability_threshold,
) -> None:
    """Backtest a strategy on a CSV of bars with the live strategy, risk and broker objects.

    Entries are sized by the risk engine from the account, as live (each strategy's risk
    budget, fractional Kelly, the limits). By default the limits are research-wide, so the run
    measures the strategy; ``--live-risk`` applies the live limits and breakers. A strategy that
    trades model predictions (ml_driven) runs behind the live inference engine, its model
    retrained every ``--retrain-every`` bars on the last ``--train-window`` bars, for the trade
    plan given (no lookahead: a model sees only bars already closed).
    """
    from tai_core.settings import ConfigurationError, load_settings  # noqa: PLC0415
    from tai_ingestion.bar_cache import default_cache  # noqa: PLC0415
    from tai_ingestion.replay import (  # noqa: PLC0415
        ReplayFileError,
        load_bars,
        symbol_from_file_name,
    )
    from tai_optimizer.backtest.costs import CostModel  # noqa: PLC0415
    from tai_optimizer.backtest.engine import BacktestConfig, EventDrivenBacktester  # noqa: PLC0415
    from tai_optimizer.backtest.report import report_dict, write_html, write_json  # noqa: PLC0415
    from tai_optimizer.backtest.retraining import (  # noqa: PLC0415
        PredictingStrategy,
    )
    from tai_optimizer.strategies import (  # noqa: PLC0415
        UnknownStrategyError,
        build_strategy,
        parse_parameters,
    )
    from tai_risk.config import RiskPolicy  # noqa: PLC0415

    try:
        parameters = parse_parameters(param or [])
        built, values = build_strategy(strategy, parameters)
        runner = _runner(
            built,
            strategy,
            RetrainingRequest(
                retrain_every,
                train_window,
                model,
                per_regime,
                take_profit_atr,
                stop_loss_atr,
                horizon,
                threshold,
            ),
        )
        name = symbol or symbol_from_file_name(data)
        replay = load_bars(data, symbol=name, timeframe=timeframe, cache=default_cache())
        bars = _feed(replay, name)
        config = BacktestConfig(
            cash=cash,
            costs=CostModel(
                commission_rate=commission,
                commission_per_trade=commission_per_trade,
                commission_per_unit=commission_per_unit,
                slippage_bps=slippage_bps,
                spread=spread,
            ),
            sizer=_sizer(sizing, sizing_value),
            leverage=leverage,
        )
        if live_risk:
            policy = load_settings(RiskPolicy)
            config = replace(
                config,
                limits=policy.limits(),
                breakers=policy.breakers(),
                risk_sees_bars=True,
            )
    except (
        ValueError,
        ReplayFileError,
        UnknownStrategyError,
        OSError,
        ConfigurationError,
    ) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from error
    if len(bars) < 2:
        typer.echo(f"error: {data} holds fewer than two valid bars", err=True)
        raise typer.Exit(code=2)
    result = EventDrivenBacktester(runner, config).run(bars)
    report = report_dict(result, strategy=strategy, parameters=values, symbol=name)
    report["rejected_rows"] = len(replay.rejections)
    if isinstance(runner, PredictingStrategy):
        report["retraining"] = {
            "every_bars": retrain_every,
            "window_bars": train_window,
            "models": len(runner.retrained),
            "predictions": len(runner.predictions),
            "trade_plan": runner.schedule.options.plan.model_dump() if runner.schedule else None,
            "retrained": [
                {
                    "at": item.at_bar.isoformat(),
                    "first_bar": item.first_bar.isoformat(),
                    "bars": item.bars,
                    "model_id": item.model_id,
                }
                for item in runner.retrained
            ],
        }
    if json_path is not None:
        write_json(report, json_path)
    if html_path is not None:
        write_html(report, result, bars, html_path)
    summary = {
        key: report[key]
        for key in (
            "final_equity",
            "return_pct",
            "sharpe",
            "max_drawdown_pct",
            "trades",
            "win_rate_pct",
        )
    }
    if "retraining" in report:
        summary["models_trained"] = report["retraining"]["models"]
        summary["predictions"] = report["retraining"]["predictions"]
    typer.echo(json.dumps(summary, indent=2))
