"""The ledger's tables (SQLAlchemy 2 declarative); the same models run on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants BIGINT identity.
AutoIncrementId = BigInteger().with_variant(Integer(), "sqlite")

USER_ROLES = ("viewer", "trader", "admin")
"""The console and API roles, least to most privileged."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back as an aware UTC datetime.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so the value is stored as naive
    UTC text (which also sorts correctly) and the zone is restored on read. Naive datetimes are
    refused on write: a naive timestamp in a trading ledger is a bug waiting to happen.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC (naive UTC text on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored moment as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


UtcTimestamp = UtcDateTime()


class Base(DeclarativeBase):
    """Declarative base with deterministic constraint names (stable migrations)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OrderRow(Base):
    """One order from request to its terminal state."""

    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32), index=True)
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(8))
    requested_quantity: Mapped[float | None] = mapped_column(Float)
    """None when risk sized the order from the strategy's intent."""
    approved_quantity: Mapped[float | None] = mapped_column(Float)
    sized_by: Mapped[str | None] = mapped_column(String(64))
    """The constraint that set the approved quantity (see tai_events.orders.SizingConstraint)."""
    rejected_by: Mapped[str | None] = mapped_column(String(64))
    """The rule that refused the order (risk's, or the broker's)."""
    reduce_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    filled_quantity: Mapped[float] = mapped_column(Float, default=0.0)
    average_fill_price: Mapped[float | None] = mapped_column(Float)
    limit_price: Mapped[float | None] = mapped_column(Float)
    stop_price: Mapped[float | None] = mapped_column(Float)
    stop_loss: Mapped[float | None] = mapped_column(Float)
    take_profit: Mapped[float | None] = mapped_column(Float)
    reference_price: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(20), index=True)
    signal_time: Mapped[datetime] = mapped_column(UtcTimestamp)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    updated_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    reason: Mapped[str] = mapped_column(Text, default="")


class OrderEventRow(Base):
    """One order state transition (the ledger row beside each order.<state> event)."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), index=True)
    state: Mapped[str] = mapped_column(String(20))
    previous_state: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[datetime] = mapped_column(UtcTimestamp)


class ApprovalRow(Base):
    """A signed approval as risk issued it; execution marks it consumed (single use)."""

    __tablename__ = "approvals"

    approval_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(128), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    issued_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    expires_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    consumed_at: Mapped[datetime | None] = mapped_column(UtcTimestamp)


class FillRow(Base):
    """One execution."""

    __tablename__ = "fills"

    fill_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(128), index=True)
    strategy: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32), index=True)
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    commission: Mapped[float] = mapped_column(Float)
    filled_at: Mapped[datetime] = mapped_column(UtcTimestamp, index=True)
    broker: Mapped[str] = mapped_column(String(32))


class PositionRow(Base):
    """Current position per account and symbol."""

    __tablename__ = "positions"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[float] = mapped_column(Float)
    average_price: Mapped[float] = mapped_column(Float)
    realized_pnl: Mapped[float] = mapped_column(Float)
    last_price: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UtcTimestamp)


class TradeRow(Base):
    """A closed round trip (entry to exit) of one position."""

    __tablename__ = "trades"

    trade_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    strategy: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32), index=True)
    direction: Mapped[str] = mapped_column(String(5))
    quantity: Mapped[float] = mapped_column(Float)
    entry_time: Mapped[datetime] = mapped_column(UtcTimestamp)
    entry_price: Mapped[float] = mapped_column(Float)
    exit_time: Mapped[datetime] = mapped_column(UtcTimestamp)
    exit_price: Mapped[float] = mapped_column(Float)
    pnl: Mapped[float] = mapped_column(Float)
    commission: Mapped[float] = mapped_column(Float)


class AccountSnapshotRow(Base):
    """Cash and equity of an account at a moment (the equity curve)."""

    __tablename__ = "account_snapshots"
    __table_args__ = (UniqueConstraint("account", "taken_at"),)

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[datetime] = mapped_column(UtcTimestamp, index=True)
    cash: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)


class TradingStateRow(Base):
    """Every trading-state transition; the newest row is the current state."""

    __tablename__ = "trading_state_changes"

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(16))
    previous_state: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(128))
    changed_at: Mapped[datetime] = mapped_column(UtcTimestamp)


class AuditRow(Base):
    """Append-only audit log of every control action and risk decision."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcTimestamp, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class OhlcvRow(Base):
    """One stored bar; (symbol, timeframe, opened_at) is unique, writes are upserts."""

    __tablename__ = "ohlcv"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(4), primary_key=True)
    opened_at: Mapped[datetime] = mapped_column(UtcTimestamp, primary_key=True)
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(32))


class ProcessedMessageRow(Base):
    """Inbox: a message id a consumer has already handled (the idempotency key)."""

    __tablename__ = "processed_messages"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UtcTimestamp)


class OutboxRow(Base):
    """A message committed with the state change that caused it, published afterwards."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_unpublished", "published_at", "id"),)

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(128), unique=True)
    producer: Mapped[str] = mapped_column(String(64))
    exchange: Mapped[str] = mapped_column(String(64))
    routing_key: Mapped[str] = mapped_column(String(256))
    headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp)
    published_at: Mapped[datetime | None] = mapped_column(UtcTimestamp)


class UserRow(Base):
    """A console/API user; the gateway's login checks the hash and locks after failures."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('viewer', 'trader', 'admin')", name="role"),
        CheckConstraint("failed_attempts >= 0", name="failed_attempts"),
    )

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UtcTimestamp)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp)


def _load_area_models() -> None:
    """Import every ``tai_store.models_<area>`` module so ``Base.metadata`` holds all tables.

    Each area (ML registry, research runs, ...) keeps its tables in its own module and its own
    Alembic branch off the initial revision; ``Store.migrate`` upgrades to every head.
    """
    import importlib  # noqa: PLC0415
    import pkgutil  # noqa: PLC0415

    import tai_store  # noqa: PLC0415

    for module in pkgutil.iter_modules(tai_store.__path__):
        if module.name.startswith("models_"):
            importlib.import_module(f"tai_store.{module.name}")


_load_area_models()
