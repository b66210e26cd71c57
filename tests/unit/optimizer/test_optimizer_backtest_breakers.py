"""One risk desk live and in backtests: a sharp loss halts trading at the daily-loss limit in
the embedded system and in the backtester alike, with the same fills."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tai_cli.embedded import EmbeddedOptions, run_replay
from tai_events.market import Timeframe
from tai_events.risk import TradingState
from tai_ingestion.replay import load_bars
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import BacktestConfig, EventDrivenBacktester
from tai_risk.config import RiskPolicy
from tai_strategy.sma_cross import SmaCrossParameters, SmaCrossStrategy

QUANTITY = 18_000.0
"""Units of sma_cross: 18 % of equity at a price near 1 (inside the 20 % notional limit)."""


def _crash_data(path: Path) -> Path:
    """Write hourly bars: a dip then a rise (sma_cross goes long on the golden cross), then
    eight bars of -3 % each within one UTC day (a loss of about 21 % on the long: 3.9 % of
    equity), then calm."""
    closes = [1.0 - 0.0005 * index + 0.001 * math.sin(index) for index in range(40)]
    closes += [closes[-1] + 0.0006 * index + 0.001 * math.sin(index) for index in range(80)]
    closes += [closes[-1] * 0.97 ** (step + 1) for step in range(8)]
    closes += [closes[-1] * (1.0 + 0.001 * math.sin(index)) for index in range(80)]
    times = pd.date_range("2024-03-04 00:00", periods=len(closes), freq="h", tz="UTC")
    opens = [closes[0], *closes[:-1]]
    frame = pd.DataFrame(
        {
            "Open": opens,
            "High": [max(o, c) * 1.0005 for o, c in zip(opens, closes, strict=True)],
            "Low": [min(o, c) * 0.9995 for o, c in zip(opens, closes, strict=True)],
            "Close": closes,
            "Volume": 1_000.0,
        },
        index=times.tz_localize(None),
    )
    frame.to_csv(path)
    return path


def _rounded(side: str, quantity: float, price: float, filled_at: str) -> tuple[object, ...]:
    return side, round(quantity, 6), round(price, 9), filled_at


async def test_a_sharp_loss_halts_trading_live_and_in_the_backtest_with_the_same_fills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: the live system runs sma_cross alone, as the backtester does
    data = _crash_data(tmp_path / "CRASH.csv")
    monkeypatch.setenv("STRATEGY_STRATEGIES", '["sma_cross"]')
    policy = RiskPolicy()
    config = BacktestConfig(
        cash=100_000.0,
        costs=CostModel(commission_rate=0.0002),
        limits=policy.limits(),
        breakers=policy.breakers(),
        risk_sees_bars=True,
    )
    strategy = SmaCrossStrategy(SmaCrossParameters(fast=10, slow=30, quantity=QUANTITY))
    bars = load_bars(data, symbol="CRASH", timeframe=Timeframe.H1).bars

    # Act
    live = await run_replay(
        EmbeddedOptions(
            data_directory=tmp_path / "live",
            replay_file=data,
            symbol="CRASH",
            serve_console=False,
            quantity=QUANTITY,
            inference=False,
        )
    )
    backtest = EventDrivenBacktester(strategy, config).run(bars)

    # Assert: the daily-loss breaker halted the backtest, and the next session lifted it
    states = [(change.state, change.changed_by) for _, change in backtest.state_changes]
    assert (TradingState.HALTED, "circuit_breaker.daily_loss") in states
    assert (TradingState.ACTIVE, "risk.session") in states
    assert any(rejection.rule == "trading_state" for rejection in backtest.rejections)
    # ... and both made the very same fills
    live_fills = [
        _rounded(fill.side, fill.quantity, fill.price, fill.filled_at.isoformat())
        for fill in live.fills
    ]
    backtest_fills = [
        _rounded(fill.side.value, fill.quantity, fill.price, fill.filled_at.isoformat())
        for fill in backtest.fills
    ]
    assert len(backtest_fills) >= 2
    assert live_fills == backtest_fills
