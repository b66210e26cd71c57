"""Builders shared by tests (importable as ``tests.factories``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tai_events.market import BarClosed, Timeframe
from tai_events.orders import FillExecuted, Side

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2017, 4, 19, 9, tzinfo=UTC)


def make_bar(
    index: int,
    close: float,
    *,
    symbol: str = "EURUSD",
    timeframe: Timeframe = Timeframe.H1,
    open_: float | None = None,
    start: datetime = T0,
) -> BarClosed:
    """Return the index-th bar of a series with the given close (open defaults to close)."""
    opened_at = start + index * timeframe.duration
    open_price = close if open_ is None else open_
    return BarClosed(
        symbol=symbol,
        timeframe=timeframe,
        opened_at=opened_at,
        closed_at=opened_at + timeframe.duration,
        open=open_price,
        high=max(open_price, close) * 1.001,
        low=min(open_price, close) * 0.999,
        close=close,
        volume=1000.0,
        source="test",
    )


def make_fill(number: int, filled_at: datetime, *, symbol: str = "EURUSD") -> FillExecuted:
    """Return a buy fill numbered ``number`` (ids fill-NN and order-NN) at ``filled_at``."""
    return FillExecuted(
        fill_id=f"fill-{number:02d}",
        order_id=f"order-{number:02d}",
        strategy="sma_cross",
        symbol=symbol,
        side=Side.BUY,
        quantity=1000.0,
        price=1.1,
        commission=0.5,
        filled_at=filled_at,
        broker="paper",
    )
