"""Backtests started from the API and their reports."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status

from tai_gateway.api.dependencies import (
    API_CHANNEL,
    PAGED_RESPONSES,
    Authenticated,
    BacktestCaller,
    Context,
    Paging,
    authorize,
    paged,
)
from tai_gateway.api.models import BacktestRunDetail, BacktestRunRequest
from tai_gateway.backtests import (
    BacktestBusyError,
    BacktestRequest,
    BacktestRequestError,
    BacktestRun,
)
from tai_gateway.control import ControlAction
from tai_gateway.guards import StrictJsonRoute
from tai_gateway.paging import page_of

MAXIMUM_RUNS = 10_000
"""Runs considered for paging (each is a small status file in the research directory)."""


def _started_at(run: BacktestRun) -> datetime:
    return datetime.fromisoformat(run.started_at)


def router() -> APIRouter:
    """Return the backtest routes (reads: any role; starting a run: traders and admins)."""
    router = APIRouter(prefix="/api/backtests", tags=["research"], route_class=StrictJsonRoute)

    @router.get("", responses=PAGED_RESPONSES)
    def list_backtests(
        context: Context, _: Authenticated, page: Paging, request: Request, response: Response
    ) -> list[BacktestRun]:
        """Return backtest runs started here, newest first."""
        runs = page_of(
            context.backtests.list(MAXIMUM_RUNS),
            page,
            time_of=_started_at,
            key_of=lambda run: run.run_id,
        )
        return paged(request, response, runs)

    @router.post("", status_code=status.HTTP_202_ACCEPTED)
    async def run_backtest(
        context: Context, principal: BacktestCaller, body: BacktestRunRequest
    ) -> BacktestRun:
        """Start ``trading-ai backtest`` on a research data file; traders and admins."""
        await authorize(context, principal, ControlAction.RUN_BACKTEST, body.data_file)
        request = BacktestRequest(
            strategy=body.strategy,
            data_file=body.data_file,
            cash=body.cash,
            commission=body.commission,
            parameters=tuple(sorted(body.parameters.items())),
        )
        try:
            run = await context.backtests.start(request, principal.username)
        except BacktestRequestError as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from None
        except BacktestBusyError as error:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from None
        await context.ledger.audit(
            actor=principal.username,
            action="run_backtest",
            subject=run.run_id,
            outcome="started",
            details={"channel": API_CHANNEL, "strategy": body.strategy, "data": body.data_file},
        )
        return run

    @router.get("/data-files")
    def data_files(context: Context, _: Authenticated) -> list[str]:
        """Return the data files a backtest may be started on."""
        return context.backtests.data_files()

    @router.get("/{run_id}")
    def get_backtest(
        context: Context, _: Authenticated, run_id: Annotated[str, Path(max_length=64)]
    ) -> BacktestRunDetail:
        """Return a run and, once it succeeded, its full report."""
        run = context.backtests.get(run_id)
        if run is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such backtest run")
        return BacktestRunDetail(**asdict(run), report=context.backtests.report(run_id))

    return router
