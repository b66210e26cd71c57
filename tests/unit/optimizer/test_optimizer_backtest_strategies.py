"""Every live strategy runs in the event-driven backtester: ATR brackets are approved with the
entry and honoured inside the bar, time exits close the position, and the command knows them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tai_core.clock import FakeClock
from tai_core.signing import ApprovalSigner
from tai_events.market import BarClosed, Timeframe
from tai_events.orders import OrderRequested, Side
from tai_events.risk import TradingState
from tai_ingestion.replay import load_bars
from tai_ingestion.samples import sample_path
from tai_optimizer.backtest.broker import ExitReason
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import (
    BACKTEST_RISK_LIMITS,
    BacktestConfig,
    EventDrivenBacktester,
)
from tai_optimizer.backtest.signing import BACKTEST_KEY_ID, BacktestApprovalSigner
from tai_optimizer.strategies import build_strategy
from tai_risk.engine import RiskEngine
from tai_risk.state import PortfolioState
from tai_strategy.registry import STRATEGY_TYPES

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def bars() -> list[BarClosed]:
    return load_bars(sample_path("EURUSD.csv"), symbol="EURUSD", timeframe=Timeframe.H1).bars[
        :3_000
    ]


@pytest.mark.parametrize("name", ["scalping", "intraday", "swing"])
def test_bracketed_strategy_exits_at_its_stop_or_target_inside_the_bar(
    name: str, bars: list[BarClosed]
) -> None:
    # Arrange: risk sizes each entry from the account's equity and the strategy's budget (an
    # FX stop of a few pips means a large position) on an FX account with 30:1 leverage;
    # scalping needs no confirmation here.
    loosen = {"scalping": {"min_confirmations": "0"}, "intraday": {}, "swing": {}}
    strategy, _ = build_strategy(name, loosen[name])
    config = BacktestConfig(cash=100_000.0, costs=CostModel(commission_rate=0.0002), leverage=30.0)
    # Act
    result = EventDrivenBacktester(strategy, config).run(bars)
    # Assert
    assert result.trades, f"{name} made no trade"
    assert result.rejections == []
    reasons = {trade.exit_reason for trade in result.trades}
    assert reasons & {ExitReason.STOP_LOSS, ExitReason.TAKE_PROFIT}
    for trade in result.trades:
        bar = bars[trade.exit_bar]
        if trade.exit_reason is not ExitReason.SIGNAL:
            # A bracket exit happens inside the bar's range (or at its open on a gap).
            assert bar.low <= trade.exit_price <= bar.high
        assert trade.exit_bar >= trade.entry_bar  # a stop can hit in the very entry bar


def test_every_registered_strategy_can_be_built_by_the_backtest_command() -> None:
    for name in STRATEGY_TYPES:
        strategy, values = build_strategy(name, {})
        assert strategy.name == name
        assert values


def test_backtest_signer_changes_only_the_key_id_and_signature_of_a_live_approval() -> None:
    # Arrange: the same request decided by an Ed25519-signing engine and a backtest one
    clock = FakeClock(T0)
    request = OrderRequested(
        order_id="ord-1",
        strategy="sma_cross",
        symbol="EURUSD",
        side=Side.BUY,
        quantity=1_000.0,
        reference_price=1.1,
        signal_time=T0,
        requested_at=T0,
    )
    live_signer = ApprovalSigner(Ed25519PrivateKey.generate())
    backtest_signer = BacktestApprovalSigner(b"k" * 32)
    # Act
    live = RiskEngine(BACKTEST_RISK_LIMITS, live_signer, clock).check(
        request, PortfolioState(equity=100_000.0), TradingState.ACTIVE
    )
    backtest = RiskEngine(BACKTEST_RISK_LIMITS, backtest_signer, clock).check(
        request, PortfolioState(equity=100_000.0), TradingState.ACTIVE
    )
    # Assert
    assert live.approval is not None
    assert backtest.approval is not None
    ignored = {"key_id", "signature"}
    assert backtest.approval.model_dump(exclude=ignored) == live.approval.model_dump(
        exclude=ignored
    )
    assert backtest.approval.key_id == BACKTEST_KEY_ID
    assert backtest_signer.verify(backtest.approval)
    tampered = backtest.approval.model_copy(update={"quantity": 2_000.0})
    assert not backtest_signer.verify(tampered)
    assert not BacktestApprovalSigner(b"x" * 32).verify(backtest.approval)
