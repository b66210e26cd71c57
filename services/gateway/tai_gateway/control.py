"""Control commands (halt, resume, flatten): admin only, published on the bus, audited."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_events.control import FlattenPositions, HaltTrading, ResumeTrading
from tai_gateway.auth import Principal, Role
from tai_gateway.ledger import GatewayLedger

CONTROL_ROLE = Role.ADMIN
"""Only admins may halt, resume or flatten."""


class ControlAction(StrEnum):
    """The control actions the gateway offers; the value is the audit action name."""

    HALT = "halt_trading"
    RESUME = "resume_trading"
    FLATTEN = "flatten_positions"


class ControlDeniedError(Exception):
    """The principal's role does not allow control actions."""


@dataclass(frozen=True, slots=True)
class ControlReceipt:
    """What was published for a control request."""

    action: ControlAction
    command: str
    message_id: str


class ControlService:
    """Publish control commands for admins and audit every request, allowed or not."""

    def __init__(self, bus: MessageBus, ledger: GatewayLedger, clock: Clock) -> None:
        self._bus = bus
        self._ledger = ledger
        self._clock = clock

    async def request(
        self,
        principal: Principal,
        action: ControlAction,
        *,
        reason: str,
        channel: str,
        symbol: str | None = None,
    ) -> ControlReceipt:
        """Publish the command for ``action``; raise ControlDeniedError for non-admins."""
        subject = symbol or "all"
        if not principal.role.allows(CONTROL_ROLE):
            await self.record_denial(principal, action, channel=channel, subject=subject)
            raise ControlDeniedError(f"{action.value} needs the {CONTROL_ROLE.value} role")
        now = self._clock.now()
        command: HaltTrading | ResumeTrading | FlattenPositions
        match action:
            case ControlAction.HALT:
                command = HaltTrading(
                    requested_by=principal.username, requested_at=now, reason=reason
                )
            case ControlAction.RESUME:
                command = ResumeTrading(
                    requested_by=principal.username, requested_at=now, reason=reason
                )
            case ControlAction.FLATTEN:
                command = FlattenPositions(
                    requested_by=principal.username, requested_at=now, reason=reason, symbol=symbol
                )
        details: dict[str, str] = {"channel": channel, "reason": reason}
        try:
            headers = await self._bus.publish(command)
        except Exception as error:
            await self._ledger.audit(
                actor=principal.username,
                action=action.value,
                subject=subject,
                outcome="failed",
                details={**details, "error": type(error).__name__},
            )
            raise
        await self._ledger.audit(
            actor=principal.username,
            action=action.value,
            subject=subject,
            outcome="published",
            details={**details, "message_id": headers.message_id},
        )
        return ControlReceipt(action, command.message_type(), headers.message_id)

    async def record_denial(
        self, principal: Principal, action: ControlAction, *, channel: str, subject: str = "all"
    ) -> None:
        """Audit a refused control request."""
        await self._ledger.audit(
            actor=principal.username,
            action=action.value,
            subject=subject,
            outcome="denied",
            details={"channel": channel, "role": principal.role.value},
        )
