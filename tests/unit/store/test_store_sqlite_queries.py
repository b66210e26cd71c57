"""Report queries on SQLite: DataFrames with UTC timestamps, ordering and limits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd

from tai_events import FillExecuted, OrderRequested, Side, TradingState
from tai_store import Store, queries
from tai_store.records import Trade

T0 = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


async def test_fills_frame_is_ordered_and_filtered(
    store: Store, make_fill: Callable[..., FillExecuted]
) -> None:
    async with store.transaction() as unit:
        await unit.fills.add(make_fill("fill-2", filled_at=T0 + timedelta(minutes=1)))
        await unit.fills.add(make_fill("fill-1"))
        await unit.fills.add(make_fill("fill-3", symbol="GBPUSD"))

    frame = queries.fills(store.sync_engine(), symbol="EURUSD")

    assert list(frame["fill_id"]) == ["fill-1", "fill-2"]
    assert str(frame["filled_at"].dtype).endswith("UTC]")
    assert frame["filled_at"].iloc[0] == pd.Timestamp(T0)


async def test_equity_curve_is_indexed_by_time(store: Store) -> None:
    async with store.transaction() as unit:
        await unit.snapshots.add("paper", T0 + timedelta(hours=1), cash=100.0, equity=105.0)
        await unit.snapshots.add("paper", T0, cash=100.0, equity=100.0)
        await unit.snapshots.add("other", T0, cash=1.0, equity=1.0)

    curve = queries.equity_curve(store.sync_engine(), "paper")

    assert list(curve["equity"]) == [100.0, 105.0]
    assert list(curve.index) == [pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(hours=1))]


async def test_empty_results_keep_their_columns(store: Store) -> None:
    engine = store.sync_engine()

    fills = queries.fills(engine)
    curve = queries.equity_curve(engine, "paper")

    assert fills.empty
    assert "price" in fills.columns
    assert curve.empty
    assert list(curve.columns) == ["cash", "equity"]


async def test_orders_audit_positions_and_state_reports(store: Store) -> None:
    async with store.transaction() as unit:
        for index in range(3):
            await unit.orders.add_requested(
                OrderRequested(
                    order_id=f"order-{index}",
                    strategy="trend",
                    symbol="EURUSD",
                    side=Side.BUY,
                    quantity=1.0,
                    reference_price=1.1,
                    signal_time=T0,
                    requested_at=T0,
                ),
                T0 + timedelta(minutes=index),
            )
            await unit.audit.record("risk", "order.check", f"order-{index}", "approved", {}, T0)
        await unit.positions.upsert(
            "paper",
            "EURUSD",
            quantity=3.0,
            average_price=1.1,
            realized_pnl=0.0,
            last_price=1.1,
            at=T0,
        )
        await unit.trading_state.record(TradingState.REDUCING, None, "drawdown", "risk", T0)
    engine = store.sync_engine()

    orders = queries.orders(engine, limit=2)
    audit = queries.audit(engine, limit=2)
    positions = queries.positions(engine, "paper")
    state = queries.trading_state(engine)

    assert list(orders["order_id"]) == ["order-2", "order-1"]
    assert list(audit["subject"]) == ["order-2", "order-1"]
    assert list(positions["quantity"]) == [3.0]
    assert state is not None
    assert (state.state, state.changed_at) == ("REDUCING", T0)


async def test_trading_state_is_none_before_any_transition(store: Store) -> None:
    assert queries.trading_state(store.sync_engine()) is None


async def _order(
    store: Store,
    order_id: str,
    strategy: str,
    state: str,
    *,
    approved: float | None = None,
    sized_by: str | None = None,
    rejected_by: str | None = None,
    reduce_only: bool = False,
) -> None:
    async with store.transaction() as unit:
        await unit.orders.add(
            order_id=order_id,
            strategy=strategy,
            symbol="EURUSD",
            side=Side.BUY,
            order_type="MARKET",
            requested_quantity=None,
            approved_quantity=approved,
            sized_by=sized_by,
            rejected_by=rejected_by,
            reduce_only=reduce_only,
            reference_price=1.1,
            signal_time=T0,
            at=T0,
            state=state,
        )


async def test_strategy_summary_counts_requests_approvals_rejections_and_pnl(
    store: Store,
) -> None:
    # Arrange: swing's orders, one bracket leg (not a request) and two closed trades
    await _order(store, "ord-1", "swing", "FILLED", approved=5.0, sized_by="risk_budget")
    await _order(store, "ord-2", "swing", "FILLED", approved=3.0, sized_by="max_var_pct")
    await _order(store, "ord-3", "swing", "REJECTED", rejected_by="max_position_notional")
    await _order(store, "ord-4", "swing", "REJECTED", rejected_by="max_position_notional")
    await _order(store, "ord-5", "swing", "REJECTED")  # the broker's
    await _order(store, "sl-1", "swing", "FILLED", approved=5.0, reduce_only=True)
    async with store.transaction() as unit:
        for index, pnl in enumerate((12.5, -2.5)):
            await unit.trades.add(
                Trade(
                    trade_id=f"trd-{index}",
                    account="paper",
                    strategy="swing",
                    symbol="EURUSD",
                    direction="LONG",
                    quantity=5.0,
                    entry_time=T0,
                    entry_price=1.1,
                    exit_time=T0 + timedelta(hours=1),
                    exit_price=1.2,
                    pnl=pnl,
                    commission=0.0,
                )
            )
    # Act
    summary = queries.strategy_summary(store.sync_engine())
    # Assert
    (row,) = summary.to_dict("records")
    assert row["strategy"] == "swing"
    assert (row["requests"], row["approved_full"], row["approved_reduced"]) == (5, 1, 1)
    assert row["rejected"] == 3
    assert row["rejections_by_rule"] == {"max_position_notional": 2, "broker": 1}
    assert row["filled_orders"] == 2
    assert (row["trades"], row["winning_trades"], row["net_pnl"]) == (2, 1, 10.0)
