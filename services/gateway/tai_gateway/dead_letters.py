"""Settle one dead letter for the API and the console alike: requeue or discard, audited."""

from __future__ import annotations

from tai_gateway.auth import Principal
from tai_gateway.control import ControlAction
from tai_gateway.ledger import GatewayLedger
from tai_gateway.operations import BrokerOperations, DeadLetterView, RequeueTargetMissingError


async def settle_dead_letter(
    operations: BrokerOperations,
    ledger: GatewayLedger,
    principal: Principal,
    action: ControlAction,
    message_id: str,
    *,
    channel: str,
) -> DeadLetterView:
    """Requeue (to the queue it died in) or discard a dead letter; audit the outcome.

    DeadLetterNotFoundError and RequeueTargetMissingError pass through; the second is
    audited as refused, since the letter stays where it is.
    """
    requeue = action is ControlAction.REQUEUE_DEAD_LETTER
    try:
        letter = await (operations.requeue if requeue else operations.discard)(message_id)
    except RequeueTargetMissingError as error:
        await ledger.audit(
            actor=principal.username,
            action=action.value,
            subject=message_id,
            outcome="refused",
            details={"channel": channel, "reason": f"queue {str(error)!r} does not exist"},
        )
        raise
    await ledger.audit(
        actor=principal.username,
        action=action.value,
        subject=message_id,
        outcome="done",
        details={
            "channel": channel,
            "queue": letter.queue,
            "routing_key": letter.routing_key,
            "reason": letter.reason[:500],
        },
    )
    return letter
