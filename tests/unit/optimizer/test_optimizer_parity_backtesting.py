"""sma_cross on the bundled GOOG daily data reproduces backtesting.py's trades and equity."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy

import tai_ingestion
from tai_events.market import Timeframe
from tai_ingestion.replay import load_bars
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import BacktestConfig, EventDrivenBacktester
from tai_optimizer.backtest.sizing import AllInWholeUnits
from tai_strategy.sma_cross import SmaCrossParameters, SmaCrossStrategy

GOOG = Path(tai_ingestion.__file__).parent / "data" / "GOOG.csv"


def _average(values: np.ndarray, length: int) -> pd.Series:
    return pd.Series(values).rolling(length).mean()


def _reference(fast: int, slow: int) -> type[Strategy]:
    class Reference(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(_average, self.data.Close, fast)
            self.slow = self.I(_average, self.data.Close, slow)

        def next(self) -> None:
            if self.fast[-2] <= self.slow[-2] and self.fast[-1] > self.slow[-1]:
                self.position.close()
                self.buy()
            elif self.fast[-2] >= self.slow[-2] and self.fast[-1] < self.slow[-1]:
                self.position.close()
                self.sell()

    return Reference


@pytest.mark.parametrize(
    ("fast", "slow", "commission"), [(10, 20, 0.002), (5, 30, 0.0), (20, 50, 0.001)]
)
def test_sma_cross_matches_backtesting_py_on_goog(fast: int, slow: int, commission: float) -> None:
    # Arrange
    bars = load_bars(GOOG, symbol="GOOG", timeframe=Timeframe.D1).bars
    frame = pd.read_csv(GOOG, index_col=0, parse_dates=True)
    config = BacktestConfig(
        cash=10_000, costs=CostModel(commission_rate=commission), sizer=AllInWholeUnits()
    )
    strategy = SmaCrossStrategy(SmaCrossParameters(fast=fast, slow=slow, quantity=1))
    # Act
    ours = EventDrivenBacktester(strategy, config).run(bars)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(frame, _reference(fast, slow), cash=10_000, commission=commission).run()
    # Assert
    reference = stats._trades
    assert len(ours.trades) == len(reference) > 10
    for row, trade in zip(reference.itertuples(), ours.trades, strict=True):
        assert trade.size == row.Size
        assert trade.entry_price == row.EntryPrice
        assert trade.exit_price == row.ExitPrice
        assert trade.entry_time.date() == row.EntryTime.date()
        assert trade.exit_time.date() == row.ExitTime.date()
        assert trade.pnl == pytest.approx(row.PnL, rel=1e-9, abs=1e-6)
    final = float(stats["Equity Final [$]"])
    assert abs(ours.final_equity - final) / final < 1e-3
