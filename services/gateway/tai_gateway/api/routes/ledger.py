"""Ledger reads: fills, positions, orders, equity, trades, risk, bars, strategies, models, audit.

Lists that grow (fills, orders, equity, trades, rejections, bars, audit) are paged newest
first with ``limit``, ``cursor``, ``since`` and ``until``; bounded ones (positions,
strategies, models) are returned whole.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Annotated, TypeVar

import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import TypeAdapter

from tai_events.base import Symbol
from tai_events.market import Timeframe
from tai_events.risk import TradingState
from tai_gateway.api.dependencies import (
    PAGED_RESPONSES,
    AdminPrincipal,
    Authenticated,
    Context,
    Paging,
    paged,
)
from tai_gateway.api.models import (
    BreakerView,
    ModelRecord,
    ModelRegistryView,
    RejectionRecord,
    RiskLimitsView,
    RiskStateView,
    records,
)
from tai_gateway.context import GatewayContext
from tai_gateway.guards import StrictJsonRoute
from tai_gateway.paging import Cursor, Page, trimmed
from tai_gateway.risk_view import circuit_breakers, risk_report
from tai_gateway.strategy_view import StrategySummary, strategy_summaries
from tai_store.records import AccountSnapshot, AuditEntry, Fill, Order, Position, StoredBar, Trade

RecordT = TypeVar("RecordT")


def typed(model: type[RecordT], frame: pd.DataFrame) -> list[RecordT]:
    """Return a ledger frame's rows as ``model`` records (the store's own record types)."""
    return TypeAdapter(list[model]).validate_python(records(frame))  # type: ignore[valid-type]


def page_of_frame(
    model: type[RecordT], result: tuple[pd.DataFrame, Cursor | None]
) -> Page[RecordT]:
    """Return a ledger page as typed records."""
    frame, cursor = result
    return Page(typed(model, frame), cursor)


def router() -> APIRouter:
    """Return the ledger routes (any signed-in role; the audit log: admins)."""
    router = APIRouter(prefix="/api", tags=["ledger"], route_class=StrictJsonRoute)

    @router.get("/fills", responses=PAGED_RESPONSES)
    def fills(
        context: Context, _: Authenticated, page: Paging, request: Request, response: Response
    ) -> list[Fill]:
        """Return fills, newest first."""
        return paged(request, response, page_of_frame(Fill, context.ledger.fills_page(page)))

    @router.get("/positions")
    def positions(context: Context, _: Authenticated) -> list[Position]:
        """Return the account's current positions."""
        return typed(Position, context.ledger.positions())

    @router.get("/orders", responses=PAGED_RESPONSES)
    def orders(
        context: Context, _: Authenticated, page: Paging, request: Request, response: Response
    ) -> list[Order]:
        """Return orders by creation, newest first."""
        result = context.ledger.orders_page(page)
        return paged(request, response, page_of_frame(Order, result))

    @router.get("/equity", responses=PAGED_RESPONSES)
    def equity(
        context: Context, _: Authenticated, page: Paging, request: Request, response: Response
    ) -> list[AccountSnapshot]:
        """Return the account's equity snapshots, newest first."""
        result = context.ledger.equity_page(page)
        return paged(request, response, page_of_frame(AccountSnapshot, result))

    @router.get("/risk/state")
    def risk_state(context: Context, _: Authenticated) -> RiskStateView:
        """Return the trading state: the latest seen on the bus, else the stored one."""
        live = context.live.snapshot().risk
        if live is not None:
            return RiskStateView(source="live", **live.model_dump())
        stored = context.ledger.trading_state()
        if stored is not None:
            return RiskStateView(
                source="store",
                state=stored.state,
                previous_state=stored.previous_state,
                reason=stored.reason,
                changed_by=stored.changed_by,
                changed_at=stored.changed_at,
            )
        return RiskStateView(source="none", state=None)

    @router.get("/trades", responses=PAGED_RESPONSES)
    def trades(
        context: Context, _: Authenticated, page: Paging, request: Request, response: Response
    ) -> list[Trade]:
        """Return the account's closed trades by exit, newest first."""
        result = context.ledger.trades_page(page)
        return paged(request, response, page_of_frame(Trade, result))

    @router.get("/risk/limits")
    def risk_limits(context: Context, _: Authenticated) -> RiskLimitsView:
        """Return each limit's usage, VaR/CVaR, drawdown and the circuit breakers."""
        return _risk_limits(context)

    @router.get("/risk/rejections", responses=PAGED_RESPONSES)
    def rejections(
        context: Context, _: Authenticated, page: Paging, request: Request, response: Response
    ) -> list[RejectionRecord]:
        """Return rejected orders with risk's reason, newest first."""
        result = context.ledger.rejections_page(page)
        return paged(request, response, page_of_frame(RejectionRecord, result))

    @router.get("/market/bars", responses=PAGED_RESPONSES)
    def bars(
        context: Context,
        _: Authenticated,
        page: Paging,
        request: Request,
        response: Response,
        symbol: Annotated[Symbol, Query(description="Instrument, e.g. EURUSD")],
        timeframe: Annotated[Timeframe, Query(description="Bar timeframe")] = Timeframe.H1,
    ) -> list[StoredBar]:
        """Return bars newest first: stored ones, and on the first page newer ones seen live."""
        stored, _cursor = context.ledger.bars_page(symbol, timeframe.value, page)
        rows = {bar.opened_at: bar for bar in typed(StoredBar, stored)}
        if page.cursor is None:
            for bar in context.live.snapshot().bar_history:
                if bar.symbol != symbol or bar.timeframe is not timeframe:
                    continue
                if page.since is not None and bar.opened_at < page.since:
                    continue
                if page.until is not None and bar.opened_at >= page.until:
                    continue
                rows[bar.opened_at] = StoredBar(
                    symbol=bar.symbol,
                    timeframe=bar.timeframe.value,
                    opened_at=bar.opened_at,
                    open=bar.open,
                    high=bar.high,
                    low=bar.low,
                    close=bar.close,
                    volume=bar.volume,
                    source=bar.source,
                )
        newest_first = sorted(rows.values(), key=_opened_at, reverse=True)
        return paged(
            request,
            response,
            trimmed(newest_first, page.limit, time_of=_opened_at, key_of=lambda _bar: ""),
        )

    @router.get("/strategies")
    def strategies(context: Context, _: Authenticated) -> list[StrategySummary]:
        """Return each strategy's realised P&L and its latest parameters seen on the bus."""
        return strategy_summaries(
            context.ledger.strategy_summary(), context.live.snapshot().strategies
        )

    @router.get("/models")
    def models(context: Context, _: Authenticated) -> ModelRegistryView:
        """Return the model registry (metadata, metrics, importances; never artifacts)."""
        frame = context.ledger.models()
        if frame is None:
            return ModelRegistryView(registry=False, models=[])
        return ModelRegistryView(
            registry=True, models=[ModelRecord.model_validate(row) for row in records(frame)]
        )

    @router.get("/audit", responses=PAGED_RESPONSES)
    def audit(
        context: Context, _: AdminPrincipal, page: Paging, request: Request, response: Response
    ) -> list[AuditEntry]:
        """Return audit rows, newest first (admins only)."""
        result = context.ledger.audit_page(page)
        return paged(request, response, page_of_frame(AuditEntry, result))

    return router


def _opened_at(bar: StoredBar) -> datetime:
    return bar.opened_at


def _risk_limits(context: GatewayContext) -> RiskLimitsView:
    limits = context.risk_limits()
    if limits is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "risk has not announced its limits yet (RiskLimitsPublished on risk.limits)",
        )
    report = risk_report(
        context.ledger.equity_curve(), context.ledger.positions(), limits, context.clock.now()
    )
    breakers = tuple(
        BreakerView(
            breaker=row["breaker"],
            condition=row["condition"],
            threshold=row["threshold"],
            moves_to=TradingState(row["moves to"]),
            lifted_by=row["lifted by"],
            usage=row["usage"],
            status="TRIPPED" if row["status"] == "TRIPPED" else "armed",
        )
        for row in circuit_breakers(report, limits)
    )
    shared = {field.name: getattr(report, field.name) for field in fields(report)}
    return RiskLimitsView(**shared, circuit_breakers=breakers)
