"""Control commands: halt, resume, flatten, strategy configuration, model promotion."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status

from tai_events.base import Symbol
from tai_events.market import Timeframe
from tai_gateway.api.dependencies import (
    API_CHANNEL,
    Context,
    FlattenCaller,
    HaltCaller,
    PromoteCaller,
    ResumeCaller,
    RollbackCaller,
    StrategyCaller,
)
from tai_gateway.api.models import (
    ControlRequest,
    ControlResponse,
    FlattenRequest,
    StrategyConfiguration,
)
from tai_gateway.auth import Principal
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction, ControlDeniedError, ControlReceipt, UnknownModelError
from tai_gateway.guards import StrictJsonRoute


async def _control(
    context: GatewayContext,
    principal: Principal,
    action: ControlAction,
    reason: str,
    symbol: str | None = None,
) -> ControlResponse:
    # The role check runs inside ControlService so that refusals are audited too.
    try:
        receipt = await context.control.request(
            principal, action, reason=reason, channel=API_CHANNEL, symbol=symbol
        )
    except ControlDeniedError as error:
        context.metrics.control_requests.labels(action.value, "denied").inc()
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(error)) from None
    except Exception:
        context.metrics.control_requests.labels(action.value, "failed").inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"could not publish {action.value}; the bus is unavailable",
        ) from None
    context.metrics.control_requests.labels(action.value, "published").inc()
    return ControlResponse(
        action=receipt.action.value, command=receipt.command, message_id=receipt.message_id
    )


def router() -> APIRouter:
    """Return the control routes (each audits its caller; the role rules are ControlService's)."""
    router = APIRouter(prefix="/api/control", tags=["control"], route_class=StrictJsonRoute)
    accepted = status.HTTP_202_ACCEPTED

    @router.post("/halt", status_code=accepted)
    async def halt(
        context: Context, principal: HaltCaller, body: ControlRequest
    ) -> ControlResponse:
        """Halt trading (kill switch); admins only."""
        return await _control(context, principal, ControlAction.HALT, body.reason)

    @router.post("/resume", status_code=accepted)
    async def resume(
        context: Context, principal: ResumeCaller, body: ControlRequest
    ) -> ControlResponse:
        """Resume trading; admins only."""
        return await _control(context, principal, ControlAction.RESUME, body.reason)

    @router.post("/flatten", status_code=accepted)
    async def flatten(
        context: Context, principal: FlattenCaller, body: FlattenRequest
    ) -> ControlResponse:
        """Close one symbol's position or every position; admins only."""
        return await _control(context, principal, ControlAction.FLATTEN, body.reason, body.symbol)

    @router.post("/strategies/{strategy}", status_code=accepted)
    async def configure_strategy(
        context: Context,
        principal: StrategyCaller,
        strategy: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$")],
        body: StrategyConfiguration,
    ) -> ControlResponse:
        """Enable, disable or tune a strategy (publishes ConfigureStrategy); traders and admins."""
        return await _guarded(
            context,
            ControlAction.CONFIGURE_STRATEGY,
            context.control.configure_strategy(
                principal,
                strategy,
                enabled=body.enabled,
                parameters=dict(body.parameters),
                reason=body.reason,
                channel=API_CHANNEL,
            ),
        )

    @router.post("/models/{model_id}/promote", status_code=accepted)
    async def promote_model(
        context: Context,
        principal: PromoteCaller,
        model_id: Annotated[str, Path(min_length=1, max_length=128)],
        body: ControlRequest,
    ) -> ControlResponse:
        """Make a model production and announce ModelPromoted; admins only."""
        return await _guarded(
            context,
            ControlAction.PROMOTE_MODEL,
            context.control.promote_model(
                principal, model_id, reason=body.reason, channel=API_CHANNEL
            ),
        )

    @router.post("/models/rollback", status_code=accepted)
    async def rollback_model(
        context: Context,
        principal: RollbackCaller,
        symbol: Annotated[Symbol, Query()],
        timeframe: Annotated[Timeframe, Query()],
        body: ControlRequest,
    ) -> ControlResponse:
        """Re-promote the previous production model of a symbol; admins only."""
        return await _guarded(
            context,
            ControlAction.ROLLBACK_MODEL,
            context.control.rollback_model(
                principal, symbol, timeframe.value, reason=body.reason, channel=API_CHANNEL
            ),
        )

    return router


async def _guarded(
    context: GatewayContext,
    action: ControlAction,
    call: Coroutine[Any, Any, ControlReceipt],
) -> ControlResponse:
    try:
        receipt = await call
    except ControlDeniedError as error:
        context.metrics.control_requests.labels(action.value, "denied").inc()
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(error)) from None
    except UnknownModelError as error:
        context.metrics.control_requests.labels(action.value, "unknown").inc()
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from None
    except Exception:
        context.metrics.control_requests.labels(action.value, "failed").inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"could not publish {action.value}; the bus is unavailable",
        ) from None
    context.metrics.control_requests.labels(action.value, "published").inc()
    return ControlResponse(
        action=receipt.action.value, command=receipt.command, message_id=receipt.message_id
    )
