"""Ledger reads: fills, positions, orders, equity, trades, risk, bars, strategies, models, audit."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Query

from tai_events.base import Symbol
from tai_events.market import Timeframe
from tai_gateway.api.dependencies import (
    DEFAULT_ROWS,
    AdminPrincipal,
    Authenticated,
    Context,
    RowLimit,
)
from tai_gateway.api.models import records
from tai_gateway.risk_view import circuit_breakers, risk_report


def router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["ledger"])

    @router.get("/fills")
    def fills(
        context: Context, _: Authenticated, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest fills, newest first."""
        return records(context.ledger.fills(limit))

    @router.get("/positions")
    def positions(context: Context, _: Authenticated) -> list[dict[str, Any]]:
        """Return the account's current positions."""
        return records(context.ledger.positions())

    @router.get("/orders")
    def orders(
        context: Context, _: Authenticated, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest orders."""
        return records(context.ledger.orders(limit))

    @router.get("/equity")
    def equity(context: Context, _: Authenticated) -> list[dict[str, Any]]:
        """Return the account's equity curve."""
        return records(context.ledger.equity_curve())

    @router.get("/risk/state")
    def risk_state(context: Context, _: Authenticated) -> dict[str, Any]:
        """Return the trading state: the latest seen on the bus, else the stored one."""
        live = context.live.snapshot().risk
        if live is not None:
            return {"source": "live", **live.model_dump(mode="json")}
        stored = context.ledger.trading_state()
        if stored is not None:
            return {
                "source": "store",
                "state": stored.state,
                "previous_state": stored.previous_state,
                "reason": stored.reason,
                "changed_by": stored.changed_by,
                "changed_at": stored.changed_at.isoformat(),
            }
        return {"source": "none", "state": None}

    @router.get("/trades")
    def trades(
        context: Context, _: Authenticated, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest closed trades, newest first."""
        return records(context.ledger.trades(limit))

    @router.get("/risk/limits")
    def risk_limits(context: Context, _: Authenticated) -> dict[str, Any]:
        """Return each limit's usage, VaR/CVaR, drawdown and the circuit breakers."""
        report = risk_report(
            context.ledger.equity_curve(),
            context.ledger.positions(),
            context.risk_limits,
            context.clock.now(),
        )
        return {**report.as_dict(), "circuit_breakers": circuit_breakers(report)}

    @router.get("/risk/rejections")
    def rejections(
        context: Context, _: Authenticated, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest rejected orders with risk's reason."""
        return records(context.ledger.rejections(limit))

    @router.get("/market/bars")
    def bars(
        context: Context,
        _: Authenticated,
        symbol: Annotated[Symbol, Query(description="Instrument, e.g. EURUSD")],
        timeframe: Annotated[Timeframe, Query(description="Bar timeframe")] = Timeframe.H1,
        limit: RowLimit = DEFAULT_ROWS,
    ) -> list[dict[str, Any]]:
        """Return stored bars (oldest first) and any newer bars seen on the bus."""
        stored = context.ledger.bars(symbol, timeframe.value, limit)
        seen = [
            {
                "opened_at": bar.opened_at,
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "close": bar.close,
                "volume": bar.volume,
            }
            for bar in context.live.snapshot().bar_history
            if bar.symbol == symbol and bar.timeframe is timeframe
        ]
        merged = pd.concat([stored, pd.DataFrame(seen, columns=stored.columns)])
        merged["opened_at"] = pd.to_datetime(merged["opened_at"], utc=True)
        merged = merged.drop_duplicates("opened_at", keep="last").sort_values("opened_at")
        return records(merged.tail(limit))

    @router.get("/strategies")
    def strategies(context: Context, _: Authenticated) -> list[dict[str, Any]]:
        """Return each strategy's realised P&L and its latest parameters seen on the bus."""
        pnl = {row["strategy"]: row for row in records(context.ledger.strategy_pnl())}
        live = {update.strategy: update for update in context.live.snapshot().strategies}
        names = sorted(set(pnl) | set(live))
        return [
            {
                "strategy": name,
                "enabled": live[name].enabled if name in live else None,
                "parameters": live[name].parameters if name in live else {},
                "orders": pnl.get(name, {}).get("orders", 0),
                "trades": pnl.get(name, {}).get("trades", 0),
                "net_pnl": pnl.get(name, {}).get("net_pnl", 0.0),
                "win_rate_pct": pnl.get(name, {}).get("win_rate_pct"),
            }
            for name in names
        ]

    @router.get("/models")
    def models(context: Context, _: Authenticated) -> dict[str, Any]:
        """Return the model registry (metadata, metrics, importances; never artifacts)."""
        frame = context.ledger.models()
        if frame is None:
            return {"registry": False, "models": []}
        return {"registry": True, "models": records(frame)}

    @router.get("/audit")
    def audit(
        context: Context, _: AdminPrincipal, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest audit rows (admins only)."""
        return records(context.ledger.audit_log(limit))

    return router
