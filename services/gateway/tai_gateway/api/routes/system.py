"""Broker operations: queue depths and dead letters (read, requeue, discard)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from tai_gateway.api.dependencies import (
    API_CHANNEL,
    DEFAULT_ROWS,
    AdminPrincipal,
    Authenticated,
    Context,
    DiscardCaller,
    RequeueCaller,
    RowLimit,
    authorize,
)
from tai_gateway.auth import Principal
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction
from tai_gateway.dead_letters import settle_dead_letter
from tai_gateway.guards import StrictJsonRoute
from tai_gateway.operations import (
    DEFAULT_QUEUES,
    DeadLetterNotFoundError,
    DeadLetterView,
    QueueStats,
    RequeueTargetMissingError,
)


def router() -> APIRouter:
    """Return the broker-operations routes (dead letters: admins only)."""
    router = APIRouter(prefix="/api/system", tags=["system"], route_class=StrictJsonRoute)

    @router.get("/queues")
    async def queues(context: Context, _: Authenticated) -> list[QueueStats]:
        """Return each watched queue's depth and consumer count."""
        try:
            stats: list[QueueStats] = await context.operations.queue_stats(DEFAULT_QUEUES)
        except Exception as error:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail=f"broker unavailable ({type(error).__name__})",
            ) from None
        return stats

    @router.get("/dead-letters")
    async def dead_letters(
        context: Context, _: AdminPrincipal, limit: RowLimit = DEFAULT_ROWS
    ) -> list[DeadLetterView]:
        """Return the dead letters with their reasons (admins only)."""
        try:
            letters: list[DeadLetterView] = await context.operations.dead_letters(limit)
        except Exception as error:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail=f"broker unavailable ({type(error).__name__})",
            ) from None
        return letters

    @router.post(
        "/dead-letters/{message_id}/requeue",
        responses={
            404: {"description": "No such dead letter"},
            409: {"description": "Its queue is gone"},
        },
    )
    async def requeue_dead_letter(
        context: Context,
        principal: RequeueCaller,
        message_id: Annotated[str, Path(min_length=1, max_length=128)],
    ) -> DeadLetterView:
        """Send a dead letter back to the queue it died in (admins only; audited)."""
        action = ControlAction.REQUEUE_DEAD_LETTER
        await authorize(context, principal, action, message_id)
        return await _settle(context, principal, action, message_id)

    @router.post(
        "/dead-letters/{message_id}/discard",
        responses={404: {"description": "No such dead letter"}},
    )
    async def discard_dead_letter(
        context: Context,
        principal: DiscardCaller,
        message_id: Annotated[str, Path(min_length=1, max_length=128)],
    ) -> DeadLetterView:
        """Discard a dead letter for good (admins only)."""
        action = ControlAction.DISCARD_DEAD_LETTER
        await authorize(context, principal, action, message_id)
        return await _settle(context, principal, action, message_id)

    return router


async def _settle(
    context: GatewayContext, principal: Principal, action: ControlAction, message_id: str
) -> DeadLetterView:
    try:
        return await settle_dead_letter(
            context.operations,
            context.ledger,
            principal,
            action,
            message_id,
            channel=API_CHANNEL,
        )
    except DeadLetterNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such dead letter") from None
    except RequeueTargetMissingError as error:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"the queue {str(error)!r} it died in no longer exists; discard it instead",
        ) from None
