"""The gateway's view of the store: users, audit rows, and the read queries it shows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import MetaData, Select, Table, and_, inspect, or_, select, text
from sqlalchemy.orm import InstrumentedAttribute

from tai_core.clock import Clock
from tai_gateway.paging import Cursor, PageRequest
from tai_store import Store, TradingStateChange, User, queries
from tai_store.models import (
    AccountSnapshotRow,
    AuditRow,
    FillRow,
    OhlcvRow,
    OrderRow,
    TradeRow,
)

ML_MODELS_TABLE = "ml_models"
"""The model registry's table (written by the optimizer); absent until a model is trained."""
ML_MODEL_COLUMNS = (
    "model_id",
    "name",
    "algorithm",
    "symbol",
    "timeframe",
    "stage",
    "feature_set_version",
    "metrics",
    "importances",
    "extras",
    "artifact_sha256",
    "created_at",
    "promoted_at",
    "needs_retraining",
    "retraining_reason",
)
RESEARCH_TABLE_PREFIX = "research_"
RESEARCH_HIDDEN_COLUMNS = frozenset({"report", "configuration", "validation", "comparison"})
RESEARCH_ORDER_COLUMNS = ("started_at", "requested_at")
"""Newest first by the first of these a research table has (runs, model challenges)."""
"""Tables of research runs (walk-forward, optimisation, Monte Carlo) share this prefix."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A stored user as the login flow needs it."""

    username: str
    password_hash: str
    role: str
    failed_attempts: int
    locked_until: datetime | None


class GatewayLedger:
    """Read and write what the gateway keeps in the store (one place knows the store's API)."""

    def __init__(self, store: Store, clock: Clock, account: str) -> None:
        self._store = store
        self._clock = clock
        self.account = account

    async def find_user(self, username: str) -> UserRecord | None:
        """Return the user or None."""
        async with self._store.transaction() as unit:
            row = await unit.users.get(username)
        return None if row is None else _record_of(row)

    async def add_user(self, username: str, password_hash: str, role: str, at: datetime) -> None:
        """Store a new user."""
        async with self._store.transaction() as unit:
            await unit.users.add(username, password_hash, role, at)

    async def audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        outcome: str,
        details: dict[str, Any],
    ) -> None:
        """Append one audit row, stamped now."""
        async with self._store.transaction() as unit:
            await unit.audit.record(actor, action, subject, outcome, details, self._clock.now())

    async def ping(self) -> bool:
        """Return True when the database answers."""
        try:
            async with self._store.transaction() as unit:
                await unit.session.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def _page(
        self,
        statement: Select[*tuple[Any, ...]],
        time_column: InstrumentedAttribute[datetime],
        key_column: InstrumentedAttribute[Any] | None,
        request: PageRequest,
    ) -> tuple[pd.DataFrame, Cursor | None]:
        """Run a keyset-paged query: newest first, in the window, strictly before the cursor."""
        if request.since is not None:
            statement = statement.where(time_column >= request.since)
        if request.until is not None:
            statement = statement.where(time_column < request.until)
        cursor = request.cursor
        if cursor is not None:
            before = time_column < cursor.time
            if key_column is not None:
                before = or_(before, and_(time_column == cursor.time, key_column < cursor.key))
            statement = statement.where(before)
        order = [time_column.desc()] + ([] if key_column is None else [key_column.desc()])
        statement = statement.order_by(*order).limit(request.limit + 1)
        with self._store.sync_engine().connect() as connection:
            result = connection.execute(statement)
            frame = pd.DataFrame.from_records(
                [tuple(row) for row in result], columns=list(result.keys())
            )
        time_name = time_column.key
        frame[time_name] = pd.to_datetime(frame[time_name], utc=True)
        if len(frame) <= request.limit:
            return frame, None
        frame = frame.head(request.limit)
        last = frame.iloc[-1]
        key = "" if key_column is None else last[key_column.key]
        return frame, Cursor(last[time_name].to_pydatetime(), _plain(key))

    def fills_page(
        self, request: PageRequest, symbol: str | None = None
    ) -> tuple[pd.DataFrame, Cursor | None]:
        """Return a page of fills, newest first."""
        statement = select(*FillRow.__table__.columns)
        if symbol is not None:
            statement = statement.where(FillRow.symbol == symbol)
        return self._page(statement, FillRow.filled_at, FillRow.fill_id, request)

    def fills(self, limit: int, symbol: str | None = None) -> pd.DataFrame:
        """Return the newest ``limit`` fills, newest first."""
        return self.fills_page(PageRequest(limit), symbol)[0]

    def equity_page(self, request: PageRequest) -> tuple[pd.DataFrame, Cursor | None]:
        """Return a page of the account's equity (account, taken_at, cash, equity), newest first."""
        statement = select(
            AccountSnapshotRow.account,
            AccountSnapshotRow.taken_at,
            AccountSnapshotRow.cash,
            AccountSnapshotRow.equity,
            AccountSnapshotRow.id,
        ).where(AccountSnapshotRow.account == self.account)
        frame, cursor = self._page(
            statement, AccountSnapshotRow.taken_at, AccountSnapshotRow.id, request
        )
        return frame.drop(columns=["id"]), cursor

    def equity_curve(self) -> pd.DataFrame:
        """Return the account's equity over time (columns taken_at, cash, equity)."""
        return queries.equity_curve(self._store.sync_engine(), self.account).reset_index()

    def positions(self) -> pd.DataFrame:
        """Return the account's current positions."""
        return queries.positions(self._store.sync_engine(), self.account)

    def orders_page(self, request: PageRequest) -> tuple[pd.DataFrame, Cursor | None]:
        """Return a page of orders by creation, newest first."""
        statement = select(*OrderRow.__table__.columns)
        frame, cursor = self._page(statement, OrderRow.created_at, OrderRow.order_id, request)
        for column in ("signal_time", "updated_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame, cursor

    def orders(self, limit: int) -> pd.DataFrame:
        """Return the newest orders."""
        return self.orders_page(PageRequest(limit))[0]

    def audit_page(self, request: PageRequest) -> tuple[pd.DataFrame, Cursor | None]:
        """Return a page of audit rows, newest first."""
        statement = select(*AuditRow.__table__.columns)
        return self._page(statement, AuditRow.occurred_at, AuditRow.id, request)

    def audit_log(self, limit: int) -> pd.DataFrame:
        """Return the newest audit rows."""
        return self.audit_page(PageRequest(limit))[0]

    def trades_page(self, request: PageRequest) -> tuple[pd.DataFrame, Cursor | None]:
        """Return a page of the account's closed trades by exit, newest first."""
        statement = select(*TradeRow.__table__.columns).where(TradeRow.account == self.account)
        frame, cursor = self._page(statement, TradeRow.exit_time, TradeRow.trade_id, request)
        frame["entry_time"] = pd.to_datetime(frame["entry_time"], utc=True)
        return frame, cursor

    def trades(self, limit: int) -> pd.DataFrame:
        """Return the newest ``limit`` closed trades of the account, newest first."""
        return self.trades_page(PageRequest(limit))[0]

    def rejections_page(self, request: PageRequest) -> tuple[pd.DataFrame, Cursor | None]:
        """Return a page of rejected orders with risk's reason, newest first."""
        statement = select(
            OrderRow.order_id,
            OrderRow.strategy,
            OrderRow.symbol,
            OrderRow.side,
            OrderRow.requested_quantity,
            OrderRow.reason,
            OrderRow.updated_at,
        ).where(OrderRow.state == "REJECTED")
        return self._page(statement, OrderRow.updated_at, OrderRow.order_id, request)

    def rejections(self, limit: int) -> pd.DataFrame:
        """Return the newest rejected orders with risk's reason, newest first."""
        return self.rejections_page(PageRequest(limit))[0]

    def bars_page(
        self, symbol: str, timeframe: str, request: PageRequest
    ) -> tuple[pd.DataFrame, Cursor | None]:
        """Return a page of stored bars of a symbol and timeframe, newest first."""
        statement = select(*OhlcvRow.__table__.columns).where(
            OhlcvRow.symbol == symbol, OhlcvRow.timeframe == timeframe
        )
        return self._page(statement, OhlcvRow.opened_at, None, request)

    def bars(self, symbol: str, timeframe: str, limit: int) -> pd.DataFrame:
        """Return the newest ``limit`` stored bars of a symbol and timeframe, oldest first."""
        frame, _ = self.bars_page(symbol, timeframe, PageRequest(limit))
        return frame.iloc[::-1].reset_index(drop=True)

    def trading_state_history(self, limit: int) -> pd.DataFrame:
        """Return the newest trading-state transitions, newest first."""
        return queries.trading_state_history(self._store.sync_engine(), limit)

    def strategy_summary(self) -> pd.DataFrame:
        """Return per strategy: requests, approvals (full / reduced), rejections by rule,
        fills, closed trades and net P&L (tai_store.queries.strategy_summary)."""
        return queries.strategy_summary(self._store.sync_engine())

    def _has_table(self, name: str) -> bool:
        return bool(inspect(self._store.sync_engine()).has_table(name))

    def models(self) -> pd.DataFrame | None:
        """Return the model registry without artifacts (None when there is no registry table)."""
        engine = self._store.sync_engine()
        if not self._has_table(ML_MODELS_TABLE):
            return None
        table = Table(ML_MODELS_TABLE, MetaData(), autoload_with=engine)
        columns = [table.c[name] for name in ML_MODEL_COLUMNS if name in table.c]
        statement = select(*columns).order_by(table.c.created_at.desc())
        with engine.connect() as connection:
            result = connection.execute(statement)
            frame = pd.DataFrame.from_records(list(result), columns=list(result.keys()))
        for column in ("created_at", "promoted_at"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], utc=True)
        for column in ("metrics", "importances", "extras"):
            if column in frame:
                frame[column] = frame[column].map(_json_value)
        return frame

    def _registry(self) -> Table | None:
        engine = self._store.sync_engine()
        if not self._has_table(ML_MODELS_TABLE):
            return None
        return Table(ML_MODELS_TABLE, MetaData(), autoload_with=engine)

    async def set_model_stage(
        self, model_id: str, stage: str, at: datetime
    ) -> dict[str, Any] | None:
        """Make a model ``production`` (archiving the one it replaces) or ``archived``.

        Return the model's identity and the replaced model id, or None for an unknown model.
        """
        table = self._registry()
        if table is None:
            return None
        async with self._store.transaction() as unit:
            session = unit.session
            row = (
                (await session.execute(select(table).where(table.c.model_id == model_id)))
                .mappings()
                .first()
            )
            if row is None:
                return None
            previous: str | None = None
            if stage == "production":
                current = (
                    await session.execute(
                        select(table.c.model_id).where(
                            table.c.symbol == row["symbol"],
                            table.c.timeframe == row["timeframe"],
                            table.c.stage == "production",
                            table.c.model_id != model_id,
                        )
                    )
                ).scalar()
                if current is not None:
                    previous = str(current)
                    await session.execute(
                        table.update().where(table.c.model_id == previous).values(stage="archived")
                    )
                await session.execute(
                    table.update()
                    .where(table.c.model_id == model_id)
                    .values(stage="production", promoted_at=at)
                )
            else:
                await session.execute(
                    table.update().where(table.c.model_id == model_id).values(stage=stage)
                )
        return {
            "model_id": row["model_id"],
            "name": row["name"],
            "symbol": row["symbol"],
            "timeframe": row["timeframe"],
            "artifact_sha256": row["artifact_sha256"],
            "previous_model_id": previous,
        }

    def previous_production_model(self, symbol: str, timeframe: str) -> str | None:
        """Return the newest archived model of a symbol that was once production, or None."""
        engine = self._store.sync_engine()
        if not self._has_table(ML_MODELS_TABLE):
            return None
        table = Table(ML_MODELS_TABLE, MetaData(), autoload_with=engine)
        statement = (
            select(table.c.model_id)
            .where(
                table.c.symbol == symbol,
                table.c.timeframe == timeframe,
                table.c.stage == "archived",
                table.c.promoted_at.is_not(None),
            )
            .order_by(table.c.promoted_at.desc())
            .limit(1)
        )
        with engine.connect() as connection:
            found = connection.execute(statement).scalar()
        return None if found is None else str(found)

    def research_tables(self, limit: int) -> dict[str, pd.DataFrame]:
        """Return the newest rows of every research table (runs stored by the optimizer)."""
        engine = self._store.sync_engine()
        names = sorted(
            name
            for name in inspect(engine).get_table_names()
            if name.startswith(RESEARCH_TABLE_PREFIX)
        )
        tables: dict[str, pd.DataFrame] = {}
        for name in names:
            table = Table(name, MetaData(), autoload_with=engine)
            # Full reports can be megabytes: the console shows the summary columns only.
            shown = [
                column
                for column in table.c
                if not _is_binary(column.type) and column.name not in RESEARCH_HIDDEN_COLUMNS
            ]
            statement = select(*shown).limit(limit)
            order = next((name for name in RESEARCH_ORDER_COLUMNS if name in table.c), None)
            if order is not None:
                statement = statement.order_by(table.c[order].desc())
            with engine.connect() as connection:
                result = connection.execute(statement)
                tables[name] = pd.DataFrame.from_records(list(result), columns=list(result.keys()))
        return tables

    def trading_state(self) -> TradingStateChange | None:
        """Return the trading-state change in force, or None when none was recorded."""
        return queries.trading_state(self._store.sync_engine())


def _plain(value: Any) -> str | int:
    # numpy integers and the like become the JSON-ready key of a cursor
    return int(value) if isinstance(value, int) or hasattr(value, "item") else str(value)


def _json_value(value: Any) -> Any:
    # Registries on SQLite hand JSON columns back as text when reflected.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _is_binary(column_type: Any) -> bool:
    try:
        return column_type.python_type is bytes
    except NotImplementedError:
        return False


def _record_of(user: User) -> UserRecord:
    return UserRecord(
        username=user.username,
        password_hash=user.password_hash,
        role=str(user.role.value),
        failed_attempts=user.failed_attempts,
        locked_until=user.locked_until,
    )
