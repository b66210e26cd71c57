"""Backtests started from the API and their reports."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from tai_gateway.api.dependencies import (
    API_CHANNEL,
    DEFAULT_ROWS,
    Authenticated,
    BacktestCaller,
    Context,
    RowLimit,
    authorize,
)
from tai_gateway.api.models import BacktestRunRequest
from tai_gateway.backtests import (
    BacktestBusyError,
    BacktestRequest,
    BacktestRequestError,
    BacktestRun,
)
from tai_gateway.control import ControlAction


def _run_response(run: BacktestRun) -> dict[str, Any]:
    return asdict(run)


def router() -> APIRouter:
    router = APIRouter(prefix="/api/backtests", tags=["research"])

    @router.get("")
    def list_backtests(
        context: Context, _: Authenticated, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return backtest runs started here, newest first."""
        return [_run_response(run) for run in context.backtests.list(limit)]

    @router.post("", status_code=status.HTTP_202_ACCEPTED)
    async def run_backtest(
        context: Context, principal: BacktestCaller, body: BacktestRunRequest
    ) -> dict[str, Any]:
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
        return _run_response(run)

    @router.get("/data-files")
    def data_files(context: Context, _: Authenticated) -> list[str]:
        """Return the data files a backtest may be started on."""
        return context.backtests.data_files()

    @router.get("/{run_id}")
    def get_backtest(
        context: Context, _: Authenticated, run_id: Annotated[str, Path(max_length=64)]
    ) -> dict[str, Any]:
        """Return a run and, once it succeeded, its full report."""
        run = context.backtests.get(run_id)
        if run is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such backtest run")
        return {**_run_response(run), "report": context.backtests.report(run_id)}

    return router
