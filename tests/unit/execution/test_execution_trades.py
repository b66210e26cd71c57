"""Execution records each strategy's closed trades in the ledger (FIFO lots per strategy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tai_events.orders import FillExecuted, Side
from tai_execution.handlers import record_trades
from tai_quant.trades import TradeLedger

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _fill(fill_id: str, strategy: str, side: Side, quantity: float, price: float) -> FillExecuted:
    return FillExecuted(
        fill_id=fill_id,
        order_id=f"ord-{fill_id}",
        strategy=strategy,
        symbol="EURUSD",
        side=side,
        quantity=quantity,
        price=price,
        commission=1.0,
        filled_at=T0 + timedelta(hours=int(fill_id[-1])),
        broker="paper",
    )


def test_a_closing_fill_records_the_strategys_trade_net_of_commissions() -> None:
    # Arrange
    ledger = TradeLedger(keep_closed=False)
    assert record_trades(ledger, _fill("f1", "swing", Side.BUY, 10_000, 1.10), "paper") == []
    # Act
    (trade,) = record_trades(ledger, _fill("f2", "swing", Side.SELL, 10_000, 1.11), "paper")
    # Assert
    assert (trade.strategy, trade.direction, trade.quantity) == ("swing", "LONG", 10_000)
    assert trade.pnl == pytest.approx(100.0 - 2.0)
    assert trade.trade_id.startswith("trd-")
    assert ledger.closed == []  # a live ledger keeps only its open lots


def test_strategies_keep_their_own_lots() -> None:
    # another strategy's opposite fill closes nothing of this one's position
    swing, scalping = TradeLedger(keep_closed=False), TradeLedger(keep_closed=False)
    record_trades(swing, _fill("f1", "swing", Side.BUY, 10_000, 1.10), "paper")
    assert record_trades(scalping, _fill("f2", "scalping", Side.SELL, 5_000, 1.12), "paper") == []
    assert swing.copy_open().open_lots["EURUSD"][0].size == 10_000
