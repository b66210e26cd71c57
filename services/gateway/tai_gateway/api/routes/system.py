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
from tai_gateway.operations import (
    DEFAULT_QUEUES,
    DeadLetterNotFoundError,
    DeadLetterView,
    QueueStats,
)


def router() -> APIRouter:
    """Return the broker-operations routes (dead letters: admins only)."""
    router = APIRouter(prefix="/api/system", tags=["system"])

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

    @router.post("/dead-letters/{message_id}/requeue")
    async def requeue_dead_letter(
        context: Context,
        principal: RequeueCaller,
        message_id: Annotated[str, Path(min_length=1, max_length=128)],
    ) -> DeadLetterView:
        """Requeue a dead letter to its original exchange (admins only)."""
        action = ControlAction.REQUEUE_DEAD_LETTER
        await authorize(context, principal, action, message_id)
        return await _settle(context, principal, action, message_id)

    @router.post("/dead-letters/{message_id}/discard")
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
    operation = (
        context.operations.requeue
        if action is ControlAction.REQUEUE_DEAD_LETTER
        else context.operations.discard
    )
    try:
        letter = await operation(message_id)
    except DeadLetterNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such dead letter") from None
    await context.ledger.audit(
        actor=principal.username,
        action=action.value,
        subject=message_id,
        outcome="done",
        details={"channel": API_CHANNEL, "reason": letter.reason[:500]},
    )
    return letter
