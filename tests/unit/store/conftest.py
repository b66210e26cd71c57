"""Fixtures for the store's unit tests: a migrated SQLite ledger per test and message builders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tai_events import BarClosed, FillExecuted, OrderApproved, Side, Timeframe
from tai_store import Store

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[Store]:
    ledger = Store(sqlite_url)
    await ledger.migrate()
    yield ledger
    await ledger.close()


@pytest.fixture
def make_bar() -> Callable[..., BarClosed]:
    def build(
        opened_at: datetime = T0,
        *,
        symbol: str = "EURUSD",
        timeframe: Timeframe = Timeframe.H1,
        close: float = 1.1,
        source: str = "replay",
    ) -> BarClosed:
        return BarClosed(
            symbol=symbol,
            timeframe=timeframe,
            opened_at=opened_at,
            closed_at=opened_at + timeframe.duration,
            open=1.0,
            high=max(1.2, close),
            low=min(0.9, close),
            close=close,
            volume=100.0,
            source=source,
        )

    return build


@pytest.fixture
def make_approval() -> Callable[..., OrderApproved]:
    def build(approval_id: str = "approval-1", order_id: str = "order-1") -> OrderApproved:
        return OrderApproved(
            approval_id=approval_id,
            order_id=order_id,
            strategy="trend",
            symbol="EURUSD",
            side=Side.BUY,
            quantity=1000.0,
            requested_quantity=2000.0,
            price_floor=1.09,
            price_ceiling=1.11,
            signal_time=T0,
            issued_at=T0,
            expires_at=T0 + timedelta(seconds=30),
            key_id="0123456789abcdef",
            signature="A" * 86,
        )

    return build


@pytest.fixture
def make_fill() -> Callable[..., FillExecuted]:
    def build(fill_id: str = "fill-1", **overrides: Any) -> FillExecuted:
        fields: dict[str, Any] = {
            "fill_id": fill_id,
            "order_id": "order-1",
            "strategy": "trend",
            "symbol": "EURUSD",
            "side": Side.BUY,
            "quantity": 1000.0,
            "price": 1.1,
            "commission": 0.5,
            "filled_at": T0,
            "broker": "paper",
        }
        fields.update(overrides)
        return FillExecuted(**fields)

    return build
