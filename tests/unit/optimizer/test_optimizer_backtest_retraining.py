"""Backtesting ml_driven with sliding-window retraining: predictions never see the future."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tai_events.market import BarClosed, Timeframe
from tai_events.ml import PredictionMade, TradePlan
from tai_inference.training import TrainingOptions
from tai_ingestion.replay import load_bars
from tai_ingestion.samples import sample_path
from tai_optimizer.backtest.engine import BacktestConfig, EventDrivenBacktester
from tai_optimizer.backtest.retraining import (
    NotAPredictionStrategyError,
    PredictingStrategy,
    RetrainingSchedule,
)
from tai_strategy.ml_driven import MlDrivenStrategy
from tai_strategy.sma_cross import SmaCrossStrategy

FAST = TrainingOptions(max_rounds=30, early_stopping_rounds=5)
SCHEDULE = RetrainingSchedule(every=200, window=600, options=FAST)
CUT = 1_000


@pytest.fixture(scope="module")
def bars() -> list[BarClosed]:
    loaded = load_bars(sample_path("EURUSD.csv"), symbol="EURUSD", timeframe=Timeframe.H1)
    return list(loaded.bars[:1_400])


def _run(bars: list[BarClosed]) -> PredictingStrategy:
    strategy = PredictingStrategy(MlDrivenStrategy(), schedule=SCHEDULE)
    for bar in bars:
        strategy.on_bar(bar)
    return strategy


def _shuffled_after(bars: list[BarClosed], cut: int) -> list[BarClosed]:
    """Return the bars with the prices of every bar after ``cut`` permuted (times kept)."""
    future = bars[cut + 1 :]
    order = np.random.default_rng(11).permutation(len(future))
    moved = [
        bar.model_copy(
            update={
                "open": future[source].open,
                "high": future[source].high,
                "low": future[source].low,
                "close": future[source].close,
                "volume": future[source].volume,
            }
        )
        for bar, source in zip(future, order, strict=True)
    ]
    return [*bars[: cut + 1], *moved]


def _key(prediction: PredictionMade) -> tuple[object, ...]:
    return (
        prediction.bar_closed_at,
        prediction.model_id,
        tuple(sorted((name.value, value) for name, value in prediction.probabilities.items())),
        prediction.regime,
    )


def test_shuffling_the_future_leaves_every_earlier_prediction_unchanged(
    bars: list[BarClosed],
) -> None:
    # Arrange
    cut_time = bars[CUT].closed_at
    # Act
    original = _run(bars)
    shuffled = _run(_shuffled_after(bars, CUT))
    # Assert: identical up to the cut (models, probabilities, regimes) ...
    before = [_key(p) for p in original.predictions if p.bar_closed_at <= cut_time]
    assert before
    assert before == [_key(p) for p in shuffled.predictions if p.bar_closed_at <= cut_time]
    early = [item for item in original.retrained if item.at_bar <= cut_time]
    assert early == [item for item in shuffled.retrained if item.at_bar <= cut_time]
    # ... while the shuffle really changed what came after it
    after = [_key(p) for p in original.predictions if p.bar_closed_at > cut_time]
    assert after != [_key(p) for p in shuffled.predictions if p.bar_closed_at > cut_time]


def test_models_are_retrained_on_a_sliding_window_and_served_from_the_next_bar(
    bars: list[BarClosed],
) -> None:
    # Act
    strategy = _run(bars)
    # Assert: the first model after 600 bars, then one every 200 bars, each on 600 bars
    assert [item.at_bar for item in strategy.retrained] == [
        bars[index].closed_at for index in (599, 799, 999, 1199, 1399)
    ]
    assert {item.bars for item in strategy.retrained} == {600}
    assert strategy.retrained[1].first_bar == bars[200].opened_at
    first = strategy.predictions[0]
    assert first.bar_closed_at > strategy.retrained[0].at_bar
    served = {p.model_id for p in strategy.predictions}
    assert served == {item.model_id for item in strategy.retrained[:-1]}
    assert {p.plan for p in strategy.predictions} == {FAST.plan}


def test_the_backtester_trades_the_predictions_by_the_models_plan(bars: list[BarClosed]) -> None:
    # Arrange
    strategy = PredictingStrategy(MlDrivenStrategy(), schedule=SCHEDULE)
    # Act
    result = EventDrivenBacktester(strategy, BacktestConfig(leverage=30.0)).run(bars)
    # Assert
    assert result.trades
    assert all(fill.bar_index > 600 for fill in result.fills)


def test_a_strategy_that_does_not_trade_predictions_is_refused() -> None:
    with pytest.raises(NotAPredictionStrategyError):
        PredictingStrategy(SmaCrossStrategy(), schedule=SCHEDULE)


def test_backtest_command_retrains_ml_driven_and_reports_the_models(tmp_path: Path) -> None:
    # Arrange
    from tai_cli.commands import app  # noqa: PLC0415

    data = tmp_path / "EURUSD.csv"
    data.write_text(
        "\n".join(sample_path("EURUSD.csv").read_text(encoding="utf-8").splitlines()[:1_201]),
        encoding="utf-8",
    )
    report = tmp_path / "report.json"
    arguments = [
        "backtest",
        "--strategy",
        "ml_driven",
        "--data",
        str(data),
        "--cash",
        "100000",
        "--commission",
        "0.0002",
        "--sizing",
        "strategy",
        "--leverage",
        "30",
        "--json",
        str(report),
    ]
    # Act
    refused = CliRunner().invoke(app, arguments)
    ran = CliRunner().invoke(app, [*arguments, "--retrain-every", "300", "--train-window", "600"])
    # Assert
    assert refused.exit_code == 2
    assert "--retrain-every" in refused.output
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.output)
    assert summary["models_trained"] == 3
    retraining = json.loads(report.read_text(encoding="utf-8"))["retraining"]
    assert retraining["every_bars"] == 300
    assert [item["bars"] for item in retraining["retrained"]] == [600, 600, 600]


def test_every_entry_is_the_trade_plan_the_models_were_trained_for(
    bars: list[BarClosed],
) -> None:
    # Arrange: models trained for a plan far from the strategy's own defaults
    plan = TradePlan(
        take_profit_atr=1.5, stop_loss_atr=1.0, max_horizon_bars=6, probability_threshold=0.4
    )
    schedule = RetrainingSchedule(every=300, window=600, options=replace(FAST, plan=plan))
    ml_driven = MlDrivenStrategy()
    strategy = PredictingStrategy(ml_driven, schedule=schedule)
    # Act
    intents = [intent for bar in bars for intent in strategy.on_bar(bar)]
    # Assert: each entry's target and stop stand 1.5 : 1 from its price, as the labels did
    entries = [intent for intent in intents if intent.stop_loss is not None]
    assert entries
    for entry in entries:
        assert entry.take_profit is not None
        assert entry.stop_loss is not None
        reward = abs(entry.take_profit - entry.reference_price)
        risk = abs(entry.reference_price - entry.stop_loss)
        assert reward / risk == pytest.approx(plan.take_profit_atr / plan.stop_loss_atr)
        assert "p >= 0.4" in entry.reason
    assert ml_driven.parameters.max_holding_bars == plan.max_horizon_bars
