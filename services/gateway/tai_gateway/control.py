"""Control commands (halt, resume, flatten): admin only, published on the bus, audited.

Refusals are audited too and raise a (rate-limited) alert: see :mod:`tai_gateway.alerts`.
The other privileged operations (dead-letter requeue/discard, starting a backtest) are
authorised here as well (:meth:`ControlService.authorize`), so that their refusals take the
same audit + alert path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_events.base import ScalarValue
from tai_events.control import ConfigureStrategy, FlattenPositions, HaltTrading, ResumeTrading
from tai_events.market import Timeframe
from tai_events.ml import ModelPromoted
from tai_gateway.alerts import DENIED_CODE, UNAUTHENTICATED_CODE, RefusalAlerts
from tai_gateway.auth import Principal, Role
from tai_gateway.ledger import GatewayLedger

CONTROL_ROLE = Role.ADMIN
"""Only admins may halt, resume, flatten, or promote and roll back models."""
STRATEGY_ROLE = Role.TRADER
"""Traders (and admins) may enable, disable and tune strategies."""


class ControlAction(StrEnum):
    """The privileged actions the gateway offers; the value is the audit action name."""

    HALT = "halt_trading"
    RESUME = "resume_trading"
    FLATTEN = "flatten_positions"
    CONFIGURE_STRATEGY = "configure_strategy"
    PROMOTE_MODEL = "promote_model"
    ROLLBACK_MODEL = "rollback_model"
    REQUEUE_DEAD_LETTER = "dead_letter_requeue"
    DISCARD_DEAD_LETTER = "dead_letter_discard"
    RUN_BACKTEST = "run_backtest"


ANONYMOUS = "anonymous"
"""The audit actor of a control call made without valid credentials."""

ACTION_ROLES = {
    ControlAction.HALT: CONTROL_ROLE,
    ControlAction.RESUME: CONTROL_ROLE,
    ControlAction.FLATTEN: CONTROL_ROLE,
    ControlAction.CONFIGURE_STRATEGY: STRATEGY_ROLE,
    ControlAction.PROMOTE_MODEL: CONTROL_ROLE,
    ControlAction.ROLLBACK_MODEL: CONTROL_ROLE,
    ControlAction.REQUEUE_DEAD_LETTER: CONTROL_ROLE,
    ControlAction.DISCARD_DEAD_LETTER: CONTROL_ROLE,
    ControlAction.RUN_BACKTEST: STRATEGY_ROLE,
}
"""The least role each action needs."""


class ControlDeniedError(Exception):
    """The principal's role does not allow control actions."""


class UnknownModelError(LookupError):
    """No registered model matches (or there is no model registry yet)."""


@dataclass(frozen=True, slots=True)
class ControlReceipt:
    """What was published for a control request."""

    action: ControlAction
    command: str
    message_id: str


class ControlService:
    """Publish control commands for admins and audit every request, allowed or not."""

    def __init__(
        self,
        bus: MessageBus,
        ledger: GatewayLedger,
        clock: Clock,
        settle: Callable[[], Awaitable[None]] | None = None,
        alerts: RefusalAlerts | None = None,
    ) -> None:
        self._bus = bus
        self._ledger = ledger
        self._clock = clock
        self._settle = settle
        """Deliver what was published (the embedded, deterministic bus delivers only on drain)."""
        self._alerts = alerts
        """Raise an alert for each refusal (rate limited); None: audit only."""

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
        await self._check_role(principal, action, channel=channel, subject=subject)
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
            case _:
                raise ValueError(f"{action.value} is not a trading-state command")
        return await self._publish(principal, action, command, subject, channel, reason)

    async def authorize(
        self, principal: Principal, action: ControlAction, *, channel: str, subject: str
    ) -> None:
        """Raise ControlDeniedError (audited, alerted) unless the role allows ``action``."""
        await self._check_role(principal, action, channel=channel, subject=subject)

    async def _check_role(
        self, principal: Principal, action: ControlAction, *, channel: str, subject: str
    ) -> None:
        required = ACTION_ROLES[action]
        if not principal.role.allows(required):
            await self.record_denial(principal, action, channel=channel, subject=subject)
            raise ControlDeniedError(f"{action.value} needs the {required.value} role")

    async def configure_strategy(
        self,
        principal: Principal,
        strategy: str,
        *,
        enabled: bool | None,
        parameters: dict[str, ScalarValue],
        reason: str,
        channel: str,
    ) -> ControlReceipt:
        """Publish ConfigureStrategy (traders and admins); raise ControlDeniedError otherwise."""
        action = ControlAction.CONFIGURE_STRATEGY
        await self._check_role(principal, action, channel=channel, subject=strategy)
        command = ConfigureStrategy(
            requested_by=principal.username,
            requested_at=self._clock.now(),
            reason=reason,
            strategy=strategy,
            enabled=enabled,
            parameters=parameters,
        )
        return await self._publish(principal, action, command, strategy, channel, reason)

    async def promote_model(
        self, principal: Principal, model_id: str, *, reason: str, channel: str
    ) -> ControlReceipt:
        """Make a model production in the registry and announce ModelPromoted (admins)."""
        action = ControlAction.PROMOTE_MODEL
        await self._check_role(principal, action, channel=channel, subject=model_id)
        return await self._promote(principal, action, model_id, reason, channel)

    async def rollback_model(
        self, principal: Principal, symbol: str, timeframe: str, *, reason: str, channel: str
    ) -> ControlReceipt:
        """Re-promote the model that production replaced last for a symbol (admins)."""
        action = ControlAction.ROLLBACK_MODEL
        subject = f"{symbol}/{timeframe}"
        await self._check_role(principal, action, channel=channel, subject=subject)
        previous = self._ledger.previous_production_model(symbol, timeframe)
        if previous is None:
            raise UnknownModelError(f"no earlier production model of {subject} to roll back to")
        return await self._promote(principal, action, previous, reason, channel)

    async def _promote(
        self, principal: Principal, action: ControlAction, model_id: str, reason: str, channel: str
    ) -> ControlReceipt:
        now = self._clock.now()
        promoted = await self._ledger.set_model_stage(model_id, "production", now)
        if promoted is None:
            raise UnknownModelError(f"model {model_id!r} is not registered")
        event = ModelPromoted(
            model_id=promoted["model_id"],
            model_name=promoted["name"],
            symbol=promoted["symbol"],
            timeframe=Timeframe(promoted["timeframe"]),
            artifact_sha256=promoted["artifact_sha256"],
            previous_model_id=promoted["previous_model_id"],
            promoted_at=now,
            promoted_by=principal.username,
        )
        return await self._publish(principal, action, event, model_id, channel, reason)

    async def _publish(
        self,
        principal: Principal,
        action: ControlAction,
        command: HaltTrading | ResumeTrading | FlattenPositions | ConfigureStrategy | ModelPromoted,
        subject: str,
        channel: str,
        reason: str,
    ) -> ControlReceipt:
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
        if self._settle is not None:
            # A command must take effect now, not with the next replayed bar.
            await self._settle()
        return ControlReceipt(action, command.message_type(), headers.message_id)

    async def record_denial(
        self, principal: Principal, action: ControlAction, *, channel: str, subject: str = "all"
    ) -> None:
        """Audit a request refused for the principal's role, and raise an alert."""
        details = {"channel": channel, "role": principal.role.value}
        await self._ledger.audit(
            actor=principal.username,
            action=action.value,
            subject=subject,
            outcome="denied",
            details=details,
        )
        if self._alerts is not None:
            await self._alerts.refused(
                code=DENIED_CODE,
                caller=principal.username,
                action=action.value,
                channel=channel,
                details={"role": principal.role.value, "subject": subject},
            )

    async def record_unauthenticated(
        self, action: ControlAction, *, channel: str, source: str, error: str
    ) -> None:
        """Audit a request made without valid credentials (none, forged, expired); alert."""
        details = {"channel": channel, "source": source[:200], "error": error[:200]}
        await self._ledger.audit(
            actor=ANONYMOUS,
            action=action.value,
            subject="all",
            outcome="unauthenticated",
            details=details,
        )
        if self._alerts is not None:
            await self._alerts.refused(
                code=UNAUTHENTICATED_CODE,
                caller=f"{ANONYMOUS}@{source[:200]}",
                action=action.value,
                channel=channel,
                details={"source": details["source"], "error": details["error"]},
            )
