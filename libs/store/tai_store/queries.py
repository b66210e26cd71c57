"""Synchronous read-only queries for dashboards and CLI reports, as pandas DataFrames.

Take the Engine from ``Store.sync_engine()``. Timestamp columns are ``datetime64[ns, UTC]``;
an empty result still has the full set of columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Executable, select

from tai_store.models import (
    AccountSnapshotRow,
    AuditRow,
    FillRow,
    OrderRow,
    PositionRow,
    TradeRow,
    TradingStateRow,
)
from tai_store.records import TradingStateChange


def _frame(engine: Engine, statement: Executable, datetime_columns: Sequence[str]) -> pd.DataFrame:
    with engine.connect() as connection:
        result = connection.execute(statement)
        columns = list(result.keys())
        rows = [tuple(row) for row in result]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for column in datetime_columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _columns(model: Any) -> list[Any]:
    return list(model.__table__.columns)


def fills(engine: Engine, symbol: str | None = None) -> pd.DataFrame:
    """Return fills (optionally of one symbol) ordered by filled_at, then fill_id."""
    statement = select(*_columns(FillRow))
    if symbol is not None:
        statement = statement.where(FillRow.symbol == symbol)
    statement = statement.order_by(FillRow.filled_at, FillRow.fill_id)
    return _frame(engine, statement, ["filled_at"])


def equity_curve(engine: Engine, account: str) -> pd.DataFrame:
    """Return the account's cash and equity indexed by ``taken_at``, in time order."""
    statement = (
        select(AccountSnapshotRow.taken_at, AccountSnapshotRow.cash, AccountSnapshotRow.equity)
        .where(AccountSnapshotRow.account == account)
        .order_by(AccountSnapshotRow.taken_at)
    )
    frame = _frame(engine, statement, ["taken_at"])
    frame["cash"] = frame["cash"].astype("float64")
    frame["equity"] = frame["equity"].astype("float64")
    return frame.set_index("taken_at")


def positions(engine: Engine, account: str) -> pd.DataFrame:
    """Return the account's positions ordered by symbol."""
    statement = (
        select(*_columns(PositionRow))
        .where(PositionRow.account == account)
        .order_by(PositionRow.symbol)
    )
    return _frame(engine, statement, ["updated_at"])


def orders(engine: Engine, limit: int = 100) -> pd.DataFrame:
    """Return the newest ``limit`` orders, newest first."""
    statement = (
        select(*_columns(OrderRow))
        .order_by(OrderRow.created_at.desc(), OrderRow.order_id.desc())
        .limit(limit)
    )
    return _frame(engine, statement, ["signal_time", "created_at", "updated_at"])


def trades(engine: Engine, account: str | None = None) -> pd.DataFrame:
    """Return closed trades ordered by exit time."""
    statement = select(*_columns(TradeRow))
    if account is not None:
        statement = statement.where(TradeRow.account == account)
    statement = statement.order_by(TradeRow.exit_time, TradeRow.trade_id)
    return _frame(engine, statement, ["entry_time", "exit_time"])


def audit(engine: Engine, limit: int = 100) -> pd.DataFrame:
    """Return the newest ``limit`` audit entries, newest first."""
    statement = select(*_columns(AuditRow)).order_by(AuditRow.id.desc()).limit(limit)
    return _frame(engine, statement, ["occurred_at"])


def trading_state(engine: Engine) -> TradingStateChange | None:
    """Return the trading-state transition in force (the last recorded), or None."""
    statement = select(*_columns(TradingStateRow)).order_by(TradingStateRow.id.desc()).limit(1)
    with engine.connect() as connection:
        row = connection.execute(statement).mappings().first()
    return None if row is None else TradingStateChange(**dict(row))


def trading_state_history(engine: Engine, limit: int = 100) -> pd.DataFrame:
    """Return the newest ``limit`` trading-state transitions, newest first."""
    statement = select(*_columns(TradingStateRow)).order_by(TradingStateRow.id.desc()).limit(limit)
    return _frame(engine, statement, ["changed_at"])


SIZED_BY_THE_REQUEST = ("requested", "risk_budget", "kelly", "position_held")
"""``sized_by`` values of an approval that kept the strategy's own size (see SizingConstraint);
any other value names the risk limit that cut the order."""

STRATEGY_SUMMARY_COLUMNS = (
    "strategy",
    "requests",
    "approved_full",
    "approved_reduced",
    "rejected",
    "rejections_by_rule",
    "filled_orders",
    "trades",
    "winning_trades",
    "net_pnl",
)


def strategy_summary(engine: Engine) -> pd.DataFrame:
    """Return per strategy: requests, approvals (full / reduced), rejections by rule, trades, P&L.

    Requests are the orders strategies sent (and risk's flatten orders); bracket legs, which
    execution works for an entry, are not requests. One row per strategy, sorted by name.
    """
    orders = _frame(
        engine,
        select(
            OrderRow.strategy,
            OrderRow.state,
            OrderRow.sized_by,
            OrderRow.rejected_by,
            OrderRow.reduce_only,
            OrderRow.approved_quantity,
        ),
        [],
    )
    trades = _frame(engine, select(TradeRow.strategy, TradeRow.pnl), [])
    legs = orders["reduce_only"].astype(bool) & orders["sized_by"].isna()
    legs &= orders["rejected_by"].isna()
    requests = orders[~legs]
    approved = requests[requests["approved_quantity"].notna()]
    reduced = approved[~approved["sized_by"].isin(SIZED_BY_THE_REQUEST)]
    rejected = requests[requests["state"] == "REJECTED"]
    rows = []
    for strategy in sorted(set(requests["strategy"]) | set(trades["strategy"])):
        refused = rejected[rejected["strategy"] == strategy]
        by_rule = refused["rejected_by"].fillna("broker").value_counts()
        own_trades = trades[trades["strategy"] == strategy]["pnl"]
        rows.append(
            {
                "strategy": strategy,
                "requests": int((requests["strategy"] == strategy).sum()),
                "approved_full": int((approved["strategy"] == strategy).sum())
                - int((reduced["strategy"] == strategy).sum()),
                "approved_reduced": int((reduced["strategy"] == strategy).sum()),
                "rejected": len(refused),
                "rejections_by_rule": {str(rule): int(n) for rule, n in by_rule.items()},
                "filled_orders": int(
                    ((requests["strategy"] == strategy) & (requests["state"] == "FILLED")).sum()
                ),
                "trades": len(own_trades),
                "winning_trades": int((own_trades > 0).sum()),
                "net_pnl": float(own_trades.sum()),
            }
        )
    return pd.DataFrame(rows, columns=list(STRATEGY_SUMMARY_COLUMNS))
