"""The unit of work and its repositories: every ledger read and write goes through here.

All methods are async and run inside the caller's transaction (``Store.transaction()``); none
commits on its own. Reads return the frozen dataclasses of ``tai_store.records``. Writes that
must be idempotent under at-least-once delivery use ``INSERT ... ON CONFLICT`` on both
PostgreSQL and SQLite, so concurrent duplicates resolve inside the database.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from pydantic_core import to_jsonable_python
from sqlalchemy import CursorResult, Select, Table, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tai_events import (
    BarClosed,
    FillExecuted,
    Message,
    MessageHeaders,
    OrderApproved,
    OrderRequested,
    OrderState,
    OrderType,
    Side,
    Timeframe,
    TradingState,
)
from tai_events.topics import exchange_for, routing_key_for
from tai_store.models import (
    AccountSnapshotRow,
    ApprovalRow,
    AuditRow,
    Base,
    FillRow,
    OhlcvRow,
    OrderEventRow,
    OrderRow,
    OutboxRow,
    PositionRow,
    ProcessedMessageRow,
    TradeRow,
    TradingStateRow,
    UserRow,
)
from tai_store.records import (
    AccountSnapshot,
    Approval,
    AuditEntry,
    Fill,
    Order,
    OrderEvent,
    OutboxMessage,
    Position,
    StoredBar,
    Trade,
    TradingStateChange,
    User,
    UserRole,
)

RecordT = TypeVar("RecordT")

# Rows per INSERT statement: keeps SQLite under its bound-parameter limit (ten columns a bar).
UPSERT_CHUNK = 500


class RecordNotFoundError(LookupError):
    """A write addressed a record that does not exist."""


def _record(record_type: type[RecordT], row: Base) -> RecordT:
    """Copy the like-named columns of an ORM row into a frozen record."""
    names = [field.name for field in dataclasses.fields(record_type)]  # type: ignore[arg-type]
    return record_type(**{name: getattr(row, name) for name in names})


def _user(row: UserRow) -> User:
    return User(
        username=row.username,
        password_hash=row.password_hash,
        role=UserRole(row.role),
        failed_attempts=row.failed_attempts,
        locked_until=row.locked_until,
        created_at=row.created_at,
    )


def _insert(dialect: str, table: type[Base]) -> Any:
    """Return the dialect's INSERT construct (it carries ``on_conflict_*``)."""
    target = cast(Table, table.__table__)
    if dialect == "postgresql":
        return postgresql.insert(target)
    if dialect == "sqlite":
        return sqlite.insert(target)
    raise NotImplementedError(f"unsupported dialect {dialect!r}")


async def _rowcount(session: AsyncSession, statement: Any) -> int:
    # SQLAlchemy only keeps an INSERT's row count when asked to (UPDATE's it always keeps).
    result = await session.execute(statement, execution_options={"preserve_rowcount": True})
    return cast(CursorResult[Any], result).rowcount


class _Repository:
    def __init__(self, session: AsyncSession, dialect: str) -> None:
        self._session = session
        self._dialect = dialect


class InboxRepository(_Repository):
    """Processed message ids per consumer: the idempotency key of every handler."""

    async def claim(self, consumer: str, message_id: str, at: datetime) -> bool:
        """Record that ``consumer`` handles ``message_id``; False if it already has.

        Concurrent claims of one id serialise on the primary key: exactly one returns True
        (the other waits for the first transaction and then sees the conflict).
        """
        statement = (
            _insert(self._dialect, ProcessedMessageRow)
            .values(consumer=consumer, message_id=message_id, processed_at=at)
            .on_conflict_do_nothing(index_elements=["consumer", "message_id"])
        )
        return await _rowcount(self._session, statement) == 1


class OutboxRepository(_Repository):
    """Messages committed with the state change that caused them; the relay publishes them."""

    async def add(self, message: Message, headers: MessageHeaders) -> None:
        """Queue ``message`` for publication with exactly these headers."""
        if headers.type != message.message_type():
            raise ValueError(
                f"headers.type {headers.type!r} does not match {message.message_type()!r}"
            )
        self._session.add(
            OutboxRow(
                message_id=headers.message_id,
                producer=headers.producer,
                exchange=exchange_for(message),
                routing_key=routing_key_for(message),
                headers=headers.to_wire(),
                body=message.to_json_bytes(),
                created_at=headers.occurred_at,
                published_at=None,
            )
        )
        await self._session.flush()

    async def pending(
        self, limit: int = 500, *, lock: bool = False, producer: str | None = None
    ) -> builtins.list[OutboxMessage]:
        """Return unpublished messages in commit (id) order, optionally of one producer.

        ``lock`` takes row locks skipping rows another relay holds (PostgreSQL only).
        """
        statement = (
            select(OutboxRow)
            .where(OutboxRow.published_at.is_(None))
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        if producer is not None:
            statement = statement.where(OutboxRow.producer == producer)
        if lock and self._dialect == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        rows = (await self._session.scalars(statement)).all()
        return [_record(OutboxMessage, row) for row in rows]

    async def mark_published(self, ids: Iterable[int], at: datetime) -> int:
        """Mark messages as published; return how many were still unpublished."""
        id_list = builtins.list(ids)
        if not id_list:
            return 0
        statement = (
            update(OutboxRow)
            .where(OutboxRow.id.in_(id_list), OutboxRow.published_at.is_(None))
            .values(published_at=at)
            .execution_options(synchronize_session=False)
        )
        return await _rowcount(self._session, statement)

    async def get(self, message_id: str) -> OutboxMessage | None:
        """Return the stored message with this id, published or not, or None."""
        statement = select(OutboxRow).where(OutboxRow.message_id == message_id)
        row = await self._session.scalar(statement.execution_options(populate_existing=True))
        return None if row is None else _record(OutboxMessage, row)

    async def count_pending(self, producer: str | None = None) -> int:
        """Return how many messages wait for publication (optionally of one producer)."""
        statement = select(func.count()).where(OutboxRow.published_at.is_(None))
        if producer is not None:
            statement = statement.where(OutboxRow.producer == producer)
        return int(await self._session.scalar(statement) or 0)


class OrderRepository(_Repository):
    """Orders and their state transitions."""

    async def add(
        self,
        *,
        order_id: str,
        strategy: str,
        symbol: str,
        side: Side | str,
        order_type: OrderType | str,
        requested_quantity: float | None,
        reference_price: float,
        signal_time: datetime,
        at: datetime,
        state: OrderState | str = OrderState.NEW,
        approved_quantity: float | None = None,
        sized_by: str | None = None,
        rejected_by: str | None = None,
        reduce_only: bool = False,
        limit_price: float | None = None,
        stop_price: float | None = None,
        stop_loss: float | None = None,
        take_profit: float | None = None,
        reason: str = "",
    ) -> Order:
        """Insert an order and its first order_events row (previous state None)."""
        row = OrderRow(
            order_id=order_id,
            strategy=strategy,
            symbol=symbol,
            side=Side(side).value,
            order_type=OrderType(order_type).value,
            requested_quantity=requested_quantity,
            approved_quantity=approved_quantity,
            sized_by=sized_by,
            rejected_by=rejected_by,
            reduce_only=reduce_only,
            filled_quantity=0.0,
            average_fill_price=None,
            limit_price=limit_price,
            stop_price=stop_price,
            stop_loss=stop_loss,
            take_profit=take_profit,
            reference_price=reference_price,
            state=OrderState(state).value,
            signal_time=signal_time,
            created_at=at,
            updated_at=at,
            reason=reason,
        )
        self._session.add(row)
        # Flush the order first: order_events has a foreign key to it and no ORM relationship
        # to make the unit of work order the two inserts.
        await self._session.flush()
        self._session.add(
            OrderEventRow(
                order_id=order_id,
                state=row.state,
                previous_state=None,
                reason=reason,
                occurred_at=at,
            )
        )
        await self._session.flush()
        return _record(Order, row)

    async def add_requested(
        self,
        request: OrderRequested,
        at: datetime,
        *,
        state: OrderState | str = OrderState.NEW,
        reason: str = "",
    ) -> Order:
        """Insert the order an OrderRequested describes."""
        return await self.add(
            order_id=request.order_id,
            strategy=request.strategy,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            requested_quantity=request.quantity,
            reference_price=request.reference_price,
            signal_time=request.signal_time,
            at=at,
            state=state,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            stop_loss=request.stop_loss,
            take_profit=request.take_profit,
            reason=reason or request.reason,
        )

    async def get(self, order_id: str) -> Order | None:
        """Return the order, or None."""
        row = await self._session.get(OrderRow, order_id, populate_existing=True)
        return None if row is None else _record(Order, row)

    async def set_state(
        self,
        order_id: str,
        state: OrderState | str,
        at: datetime,
        reason: str,
        *,
        filled_quantity: float | None = None,
        average_fill_price: float | None = None,
        approved_quantity: float | None = None,
    ) -> Order:
        """Move an order to ``state`` (row-locked) and append the transition to order_events.

        The transition rules belong to the execution domain; the ledger records what it is told.
        Raises RecordNotFoundError for an unknown order.
        """
        new_state = OrderState(state).value
        statement = (
            select(OrderRow)
            .where(OrderRow.order_id == order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        row = await self._session.scalar(statement)
        if row is None:
            raise RecordNotFoundError(f"no order {order_id!r}")
        previous_state = row.state
        row.state = new_state
        row.updated_at = at
        row.reason = reason
        if filled_quantity is not None:
            row.filled_quantity = filled_quantity
        if average_fill_price is not None:
            row.average_fill_price = average_fill_price
        if approved_quantity is not None:
            row.approved_quantity = approved_quantity
        self._session.add(
            OrderEventRow(
                order_id=order_id,
                state=new_state,
                previous_state=previous_state,
                reason=reason,
                occurred_at=at,
            )
        )
        await self._session.flush()
        return _record(Order, row)

    async def list_by_state(
        self, states: Iterable[OrderState | str], symbol: str | None = None
    ) -> builtins.list[Order]:
        """Return orders in any of ``states`` (optionally one symbol), oldest first."""
        wanted = [OrderState(state).value for state in states]
        statement = select(OrderRow).where(OrderRow.state.in_(wanted))
        if symbol is not None:
            statement = statement.where(OrderRow.symbol == symbol)
        statement = statement.order_by(OrderRow.created_at, OrderRow.order_id)
        rows = (await self._session.scalars(statement)).all()
        return [_record(Order, row) for row in rows]

    async def events(self, order_id: str) -> builtins.list[OrderEvent]:
        """Return an order's transitions in the order they were recorded."""
        statement = (
            select(OrderEventRow)
            .where(OrderEventRow.order_id == order_id)
            .order_by(OrderEventRow.id)
        )
        rows = (await self._session.scalars(statement)).all()
        return [_record(OrderEvent, row) for row in rows]


class ApprovalRepository(_Repository):
    """Signed approvals; each may be consumed once."""

    async def add(self, approval: OrderApproved) -> None:
        """Store an approval as issued (the whole signed message as JSON)."""
        self._session.add(
            ApprovalRow(
                approval_id=approval.approval_id,
                order_id=approval.order_id,
                payload=approval.model_dump(mode="json"),
                issued_at=approval.issued_at,
                expires_at=approval.expires_at,
                consumed_at=None,
            )
        )
        await self._session.flush()

    async def get(self, approval_id: str) -> Approval | None:
        """Return the approval, or None."""
        row = await self._session.get(ApprovalRow, approval_id, populate_existing=True)
        return None if row is None else _record(Approval, row)

    async def consume(self, approval_id: str, at: datetime) -> bool:
        """Mark the approval used; False if unknown or already consumed (replay).

        A single conditional UPDATE, so two concurrent consumers cannot both succeed.
        """
        statement = (
            update(ApprovalRow)
            .where(ApprovalRow.approval_id == approval_id, ApprovalRow.consumed_at.is_(None))
            .values(consumed_at=at)
            .execution_options(synchronize_session=False)
        )
        return await _rowcount(self._session, statement) == 1


class FillRepository(_Repository):
    """Executions, idempotent on fill_id."""

    async def add(self, fill: FillExecuted) -> bool:
        """Store a fill; False if this fill_id is already stored."""
        statement = (
            _insert(self._dialect, FillRow)
            .values(
                fill_id=fill.fill_id,
                order_id=fill.order_id,
                strategy=fill.strategy,
                symbol=fill.symbol,
                side=fill.side.value,
                quantity=fill.quantity,
                price=fill.price,
                commission=fill.commission,
                filled_at=fill.filled_at,
                broker=fill.broker,
            )
            .on_conflict_do_nothing(index_elements=["fill_id"])
        )
        return await _rowcount(self._session, statement) == 1

    async def list(self, symbol: str | None = None) -> builtins.list[Fill]:
        """Return fills (optionally of one symbol) ordered by filled_at, then fill_id."""
        statement = select(FillRow)
        if symbol is not None:
            statement = statement.where(FillRow.symbol == symbol)
        statement = statement.order_by(FillRow.filled_at, FillRow.fill_id)
        rows = (await self._session.scalars(statement)).all()
        return [_record(Fill, row) for row in rows]

    async def for_order(self, order_id: str) -> builtins.list[Fill]:
        """Return an order's fills in time order."""
        statement = (
            select(FillRow)
            .where(FillRow.order_id == order_id)
            .order_by(FillRow.filled_at, FillRow.fill_id)
        )
        rows = (await self._session.scalars(statement)).all()
        return [_record(Fill, row) for row in rows]


class PositionRepository(_Repository):
    """Current positions per account and symbol."""

    async def get(self, account: str, symbol: str) -> Position | None:
        """Return the position, or None if never opened."""
        row = await self._session.get(PositionRow, (account, symbol), populate_existing=True)
        return None if row is None else _record(Position, row)

    async def upsert(
        self,
        account: str,
        symbol: str,
        *,
        quantity: float,
        average_price: float,
        realized_pnl: float,
        last_price: float,
        at: datetime,
    ) -> None:
        """Insert or replace the position of ``account`` in ``symbol``."""
        values = {
            "quantity": quantity,
            "average_price": average_price,
            "realized_pnl": realized_pnl,
            "last_price": last_price,
            "updated_at": at,
        }
        statement = (
            _insert(self._dialect, PositionRow)
            .values(account=account, symbol=symbol, **values)
            .on_conflict_do_update(index_elements=["account", "symbol"], set_=values)
        )
        await self._session.execute(statement)

    async def list(self, account: str) -> builtins.list[Position]:
        """Return the account's positions ordered by symbol (flat ones included)."""
        statement = (
            select(PositionRow).where(PositionRow.account == account).order_by(PositionRow.symbol)
        )
        rows = (await self._session.scalars(statement)).all()
        return [_record(Position, row) for row in rows]


class TradeRepository(_Repository):
    """Closed round trips, idempotent on trade_id."""

    async def add(self, trade: Trade) -> bool:
        """Store a closed trade; False if this trade_id is already stored."""
        statement = (
            _insert(self._dialect, TradeRow)
            .values(**dataclasses.asdict(trade))
            .on_conflict_do_nothing(index_elements=["trade_id"])
        )
        return await _rowcount(self._session, statement) == 1

    async def list(
        self, account: str | None = None, symbol: str | None = None
    ) -> builtins.list[Trade]:
        """Return trades ordered by exit time, then trade_id."""
        statement = select(TradeRow)
        if account is not None:
            statement = statement.where(TradeRow.account == account)
        if symbol is not None:
            statement = statement.where(TradeRow.symbol == symbol)
        statement = statement.order_by(TradeRow.exit_time, TradeRow.trade_id)
        rows = (await self._session.scalars(statement)).all()
        return [_record(Trade, row) for row in rows]


class SnapshotRepository(_Repository):
    """The equity curve: account snapshots, idempotent on (account, taken_at)."""

    async def add(self, account: str, taken_at: datetime, cash: float, equity: float) -> bool:
        """Store a snapshot; False if one exists for this account and moment (first one wins)."""
        statement = (
            _insert(self._dialect, AccountSnapshotRow)
            .values(account=account, taken_at=taken_at, cash=cash, equity=equity)
            .on_conflict_do_nothing(index_elements=["account", "taken_at"])
        )
        return await _rowcount(self._session, statement) == 1

    async def add_many(self, account: str, points: Mapping[datetime, tuple[float, float]]) -> None:
        """Store ``{taken_at: (cash, equity)}`` in one statement; existing moments are kept."""
        if not points:
            return
        statement = _insert(self._dialect, AccountSnapshotRow).on_conflict_do_nothing(
            index_elements=["account", "taken_at"]
        )
        rows = [
            {"account": account, "taken_at": taken_at, "cash": cash, "equity": equity}
            for taken_at, (cash, equity) in sorted(points.items())
        ]
        await self._session.execute(statement, rows)

    async def put(self, account: str, taken_at: datetime, cash: float, equity: float) -> None:
        """Store a snapshot, replacing one at the same moment (the account changed since)."""
        insert = _insert(self._dialect, AccountSnapshotRow)
        statement = insert.values(
            account=account, taken_at=taken_at, cash=cash, equity=equity
        ).on_conflict_do_update(
            index_elements=["account", "taken_at"],
            set_={"cash": insert.excluded.cash, "equity": insert.excluded.equity},
        )
        await self._session.execute(statement)

    async def latest(self, account: str) -> AccountSnapshot | None:
        """Return the newest snapshot of an account, or None."""
        statement = (
            select(AccountSnapshotRow)
            .where(AccountSnapshotRow.account == account)
            .order_by(AccountSnapshotRow.taken_at.desc())
            .limit(1)
        )
        row = (await self._session.scalars(statement)).first()
        return None if row is None else _record(AccountSnapshot, row)

    async def list(
        self, account: str, start: datetime | None = None, end: datetime | None = None
    ) -> builtins.list[AccountSnapshot]:
        """Return snapshots in time order, ``start`` inclusive, ``end`` exclusive."""
        statement = select(AccountSnapshotRow).where(AccountSnapshotRow.account == account)
        if start is not None:
            statement = statement.where(AccountSnapshotRow.taken_at >= start)
        if end is not None:
            statement = statement.where(AccountSnapshotRow.taken_at < end)
        statement = statement.order_by(AccountSnapshotRow.taken_at)
        rows = (await self._session.scalars(statement)).all()
        return [_record(AccountSnapshot, row) for row in rows]


class TradingStateRepository(_Repository):
    """Trading-state transitions; the latest recorded one is in force."""

    async def record(
        self,
        state: TradingState | str,
        previous_state: TradingState | str | None,
        reason: str,
        changed_by: str,
        at: datetime,
    ) -> TradingStateChange:
        """Append a transition and return it."""
        row = TradingStateRow(
            state=TradingState(state).value,
            previous_state=None if previous_state is None else TradingState(previous_state).value,
            reason=reason,
            changed_by=changed_by,
            changed_at=at,
        )
        self._session.add(row)
        await self._session.flush()
        return _record(TradingStateChange, row)

    async def current(self) -> TradingStateChange | None:
        """Return the transition recorded last (insertion order), or None if none yet."""
        statement = select(TradingStateRow).order_by(TradingStateRow.id.desc()).limit(1)
        row = await self._session.scalar(statement)
        return None if row is None else _record(TradingStateChange, row)

    async def history(self, limit: int = 100) -> builtins.list[TradingStateChange]:
        """Return the newest ``limit`` transitions, newest first."""
        statement = select(TradingStateRow).order_by(TradingStateRow.id.desc()).limit(limit)
        rows = (await self._session.scalars(statement)).all()
        return [_record(TradingStateChange, row) for row in rows]


class AuditRepository(_Repository):
    """The append-only audit log (the database refuses UPDATE and DELETE)."""

    async def record(
        self,
        actor: str,
        action: str,
        subject: str,
        outcome: str,
        details: Mapping[str, Any],
        at: datetime,
    ) -> AuditEntry:
        """Append an entry; ``details`` is made JSON-safe (datetimes, enums, models)."""
        row = AuditRow(
            occurred_at=at,
            actor=actor,
            action=action,
            subject=subject,
            outcome=outcome,
            details=to_jsonable_python(dict(details)),
        )
        self._session.add(row)
        await self._session.flush()
        return _record(AuditEntry, row)

    async def list(self, limit: int = 100, action: str | None = None) -> builtins.list[AuditEntry]:
        """Return the newest ``limit`` entries (optionally of one action), newest first."""
        statement = select(AuditRow)
        if action is not None:
            statement = statement.where(AuditRow.action == action)
        statement = statement.order_by(AuditRow.id.desc()).limit(limit)
        rows = (await self._session.scalars(statement)).all()
        return [_record(AuditEntry, row) for row in rows]


def ohlcv_rows(bars: Iterable[BarClosed]) -> builtins.list[dict[str, Any]]:
    """Return the rows of bars, one per (symbol, timeframe, open time): the last one wins.

    PostgreSQL refuses to update one row twice in a statement.
    """
    unique: dict[tuple[str, str, datetime], dict[str, Any]] = {}
    for bar in bars:
        unique[(bar.symbol, bar.timeframe.value, bar.opened_at)] = {
            "symbol": bar.symbol,
            "timeframe": bar.timeframe.value,
            "opened_at": bar.opened_at,
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
            "source": bar.source,
        }
    return builtins.list(unique.values())


@functools.cache
def ohlcv_upsert(dialect: str) -> Any:
    """Return the dialect's bar upsert, built once (executed with many parameter sets)."""
    insert = _insert(dialect, OhlcvRow)
    return insert.on_conflict_do_update(
        index_elements=["symbol", "timeframe", "opened_at"],
        set_={
            name: insert.excluded[name]
            for name in ("open", "high", "low", "close", "volume", "source")
        },
    )


class OhlcvRepository(_Repository):
    """Stored bars, unique on (symbol, timeframe, opened_at); writes are upserts."""

    async def upsert_many(self, bars: Iterable[BarClosed]) -> int:
        """Insert or update bars; return how many distinct bars were written.

        A bar repeated in one call counts once and its last occurrence wins.
        """
        rows = ohlcv_rows(bars)
        statement = ohlcv_upsert(self._dialect)
        for start in range(0, len(rows), UPSERT_CHUNK):
            # One statement with many parameter sets: compiled once and cached, not per call
            # (ingestion stores every bar before publishing it).
            await self._session.execute(statement, rows[start : start + UPSERT_CHUNK])
        return len(rows)

    def _select(self, symbol: str, timeframe: Timeframe | str) -> Select[OhlcvRow]:
        return select(OhlcvRow).where(
            and_(OhlcvRow.symbol == symbol, OhlcvRow.timeframe == Timeframe(timeframe).value)
        )

    async def range(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        limit: int | None = None,
    ) -> builtins.list[StoredBar]:
        """Return bars opened in [start, end) (either bound optional), oldest first.

        ``limit`` keeps only the oldest ``limit`` of them.
        """
        statement = self._select(symbol, timeframe)
        if start is not None:
            statement = statement.where(OhlcvRow.opened_at >= start)
        if end is not None:
            statement = statement.where(OhlcvRow.opened_at < end)
        statement = statement.order_by(OhlcvRow.opened_at)
        if limit is not None:
            statement = statement.limit(limit)
        rows = (await self._session.scalars(statement)).all()
        return [_record(StoredBar, row) for row in rows]

    async def symbols(self, timeframe: Timeframe | str) -> builtins.list[str]:
        """Return the symbols with stored bars of a timeframe, sorted."""
        statement = (
            select(OhlcvRow.symbol)
            .where(OhlcvRow.timeframe == Timeframe(timeframe).value)
            .distinct()
            .order_by(OhlcvRow.symbol)
        )
        return builtins.list((await self._session.scalars(statement)).all())

    async def latest(
        self, symbol: str, timeframe: Timeframe | str, limit: int = 1
    ) -> builtins.list[StoredBar]:
        """Return the newest ``limit`` bars, oldest first (ready to warm up indicators)."""
        statement = self._select(symbol, timeframe).order_by(OhlcvRow.opened_at.desc()).limit(limit)
        rows = (await self._session.scalars(statement)).all()
        return [_record(StoredBar, row) for row in reversed(rows)]


class UserRepository(_Repository):
    """Console/API users and their failed-login lock-out."""

    async def add(
        self, username: str, password_hash: str, role: UserRole | str, at: datetime
    ) -> User:
        """Create a user (the hash is computed by the caller; plain passwords never reach here)."""
        row = UserRow(
            username=username,
            password_hash=password_hash,
            role=UserRole(role).value,
            failed_attempts=0,
            locked_until=None,
            created_at=at,
        )
        self._session.add(row)
        await self._session.flush()
        return _user(row)

    async def get(self, username: str) -> User | None:
        """Return the user, or None."""
        row = await self._session.get(UserRow, username, populate_existing=True)
        return None if row is None else _user(row)

    async def list(self) -> builtins.list[User]:
        """Return every user ordered by name."""
        rows = (await self._session.scalars(select(UserRow).order_by(UserRow.username))).all()
        return [_user(row) for row in rows]

    async def record_failure(
        self, username: str, at: datetime, lock_after: int, lock_for: timedelta
    ) -> User | None:
        """Count a failed login; lock the account for ``lock_for`` at ``lock_after`` failures.

        Returns the updated user, or None for an unknown username.
        """
        if lock_after < 1:
            raise ValueError("lock_after must be at least 1")
        statement = (
            select(UserRow)
            .where(UserRow.username == username)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        row = await self._session.scalar(statement)
        if row is None:
            return None
        row.failed_attempts += 1
        if row.failed_attempts >= lock_after:
            row.locked_until = at + lock_for
        await self._session.flush()
        return _user(row)

    async def reset_failures(self, username: str) -> None:
        """Clear the failure count and any lock-out (after a successful login)."""
        statement = (
            update(UserRow)
            .where(UserRow.username == username)
            .values(failed_attempts=0, locked_until=None)
            .execution_options(synchronize_session=False)
        )
        await self._session.execute(statement)


class UnitOfWork:
    """One transaction's session and the repositories that share it."""

    def __init__(self, session: AsyncSession, dialect: str) -> None:
        self.session = session
        self.inbox = InboxRepository(session, dialect)
        self.outbox = OutboxRepository(session, dialect)
        self.orders = OrderRepository(session, dialect)
        self.approvals = ApprovalRepository(session, dialect)
        self.fills = FillRepository(session, dialect)
        self.positions = PositionRepository(session, dialect)
        self.trades = TradeRepository(session, dialect)
        self.snapshots = SnapshotRepository(session, dialect)
        self.trading_state = TradingStateRepository(session, dialect)
        self.audit = AuditRepository(session, dialect)
        self.ohlcv = OhlcvRepository(session, dialect)
        self.users = UserRepository(session, dialect)
