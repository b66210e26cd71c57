"""What the repositories return: frozen dataclasses, detached from any session.

Every repository read returns these (never ORM rows), so values stay valid after the
transaction ends and callers cannot change the ledger by mutating a result. Field names are
the column names of tai_store.models; every timestamp is an aware UTC datetime.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tai_events import BarClosed, FillExecuted, OrderApproved, Side, Timeframe


class UserRole(StrEnum):
    """Console and API roles; each includes the rights of the ones before it."""

    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Order:
    """An order's current ledger state."""

    order_id: str
    strategy: str
    symbol: str
    side: str
    order_type: str
    requested_quantity: float | None
    approved_quantity: float | None
    filled_quantity: float
    average_fill_price: float | None
    limit_price: float | None
    stop_price: float | None
    stop_loss: float | None
    take_profit: float | None
    reference_price: float
    state: str
    signal_time: datetime
    created_at: datetime
    updated_at: datetime
    reason: str
    sized_by: str | None = None
    rejected_by: str | None = None
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One recorded order state transition."""

    id: int
    order_id: str
    state: str
    previous_state: str | None
    reason: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Approval:
    """A stored approval; ``payload`` is the signed OrderApproved as JSON."""

    approval_id: str
    order_id: str
    payload: dict[str, Any]
    issued_at: datetime
    expires_at: datetime
    consumed_at: datetime | None

    def to_event(self) -> OrderApproved:
        """Rebuild (and re-validate) the OrderApproved message."""
        return OrderApproved.model_validate(self.payload)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution."""

    fill_id: str
    order_id: str
    strategy: str
    symbol: str
    side: str
    quantity: float
    price: float
    commission: float
    filled_at: datetime
    broker: str

    def to_event(self) -> FillExecuted:
        """Return the fill as the event it was published as."""
        return FillExecuted(
            fill_id=self.fill_id,
            order_id=self.order_id,
            strategy=self.strategy,
            symbol=self.symbol,
            side=Side(self.side),
            quantity=self.quantity,
            price=self.price,
            commission=self.commission,
            filled_at=self.filled_at,
            broker=self.broker,
        )


@dataclass(frozen=True, slots=True)
class Position:
    """A position of one account in one symbol (quantity signed: + long, - short)."""

    account: str
    symbol: str
    quantity: float
    average_price: float
    realized_pnl: float
    last_price: float
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Trade:
    """A closed round trip; also the input of ``trades.add``."""

    trade_id: str
    account: str
    strategy: str
    symbol: str
    direction: str
    quantity: float
    entry_time: datetime
    entry_price: float
    exit_time: datetime
    exit_price: float
    pnl: float
    commission: float


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Cash and equity of an account at one moment."""

    account: str
    taken_at: datetime
    cash: float
    equity: float


@dataclass(frozen=True, slots=True)
class TradingStateChange:
    """A trading-state transition; the newest one is the current state."""

    id: int
    state: str
    previous_state: str | None
    reason: str
    changed_by: str
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One append-only audit record."""

    id: int
    occurred_at: datetime
    actor: str
    action: str
    subject: str
    outcome: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredBar:
    """A stored OHLCV bar; ``to_event()`` turns it back into a BarClosed."""

    symbol: str
    timeframe: str
    opened_at: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    source: str

    @property
    def closed_at(self) -> datetime:
        """Return the moment the bar closed (open time plus the timeframe)."""
        return self.opened_at + Timeframe(self.timeframe).duration

    def to_event(self) -> BarClosed:
        """Rebuild the BarClosed event this bar was stored from."""
        return BarClosed(
            symbol=self.symbol,
            timeframe=Timeframe(self.timeframe),
            opened_at=self.opened_at,
            closed_at=self.closed_at,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            source=self.source,
        )


@dataclass(frozen=True, slots=True)
class User:
    """A console/API account (the hash only, never the password)."""

    username: str
    password_hash: str
    role: UserRole
    failed_attempts: int
    locked_until: datetime | None
    created_at: datetime

    def is_locked(self, at: datetime) -> bool:
        """Return True while a lock-out is in force at ``at``."""
        return self.locked_until is not None and at < self.locked_until


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message waiting in (or published from) the outbox."""

    id: int
    message_id: str
    producer: str
    exchange: str
    routing_key: str
    headers: dict[str, Any]
    body: bytes
    created_at: datetime
    published_at: datetime | None
