"""The break-glass halt: an operator-signed request halts trading without any login.

``POST /api/control/break-glass`` takes a request signed with an operator key
(``trading-ai control halt``); it does not depend on user accounts, sessions or the login
throttle, so nobody can lock the kill switch away. Every call is audited; refusals raise an
alert like any unauthenticated control call; the caller's address is rate limited.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tai_core.breakglass import BreakGlassRequest, OperatorVerifier
from tai_gateway.api.dependencies import Context
from tai_gateway.auth import Principal, Role
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction
from tai_gateway.guards import StrictJsonRoute

BREAK_GLASS_CHANNEL = "break_glass"
BREAK_GLASS_PATH = "/api/control/break-glass"


class BreakGlassBody(BaseModel):
    """A signed break-glass request (see ``tai_core.breakglass``)."""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(pattern=r"^[a-z_]{1,32}$")
    reason: str = Field(default="", max_length=2000)
    request_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    issued_at: AwareDatetime
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    signature: str = Field(pattern=r"^[A-Za-z0-9_-]{86}$")


class BreakGlassResponse(BaseModel):
    """The halt command published for a break-glass request."""

    action: str
    command: str
    message_id: str
    operator: str


def operator_verifier(context: GatewayContext) -> OperatorVerifier | None:
    """Return the verifier of the configured operator keys, or None when there are none."""
    keys = context.settings.operator_public_keys.strip()
    if not keys:
        return None
    return OperatorVerifier.from_pem(
        keys, max_age=timedelta(seconds=context.settings.break_glass_max_age_seconds)
    )


def break_glass_router() -> APIRouter:
    """Return the router of the break-glass endpoint.

    The operator keys are the application's ``state.operator_verifier``, built from the
    settings when the API is created (so bad keys stop the start, not the first call).
    """
    router = APIRouter(prefix="/api/control", tags=["control"], route_class=StrictJsonRoute)

    @router.post(
        "/break-glass",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=BreakGlassResponse,
    )
    async def break_glass(
        context: Context, request: Request, body: BreakGlassBody
    ) -> BreakGlassResponse:
        """Halt trading on an operator-signed request (no login; `trading-ai control halt`)."""
        verifier: OperatorVerifier | None = request.app.state.operator_verifier
        source = request.client.host if request.client else "unknown"
        decision = context.limiter.allow(f"ip:{source}")
        if not decision.allowed:
            context.metrics.rate_limited.inc()
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail="rate limit exceeded",
                headers={"Retry-After": str(max(1, round(decision.retry_after_seconds)))},
            )
        signed = BreakGlassRequest(
            action=body.action,
            reason=body.reason,
            request_id=body.request_id,
            issued_at=body.issued_at,
            key_id=body.key_id,
            signature=body.signature,
        )
        check = verifier.check(signed, context.clock.now()) if verifier is not None else None
        if check is None or not check.valid:
            error = "no operator keys are configured" if check is None else check.reason
            context.metrics.control_requests.labels(
                ControlAction.HALT.value, "unauthenticated"
            ).inc()
            await context.control.record_unauthenticated(
                ControlAction.HALT,
                channel=BREAK_GLASS_CHANNEL,
                source=source,
                error=f"break-glass refused: {error}",
            )
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"break-glass refused: {error}")
        operator = Principal(f"operator:{signed.key_id}", Role.ADMIN)
        reason = f"break-glass {signed.request_id}: {signed.reason}"[:2000]
        try:
            receipt = await context.control.request(
                operator, ControlAction.HALT, reason=reason, channel=BREAK_GLASS_CHANNEL
            )
        except Exception:
            context.metrics.control_requests.labels(ControlAction.HALT.value, "failed").inc()
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="could not publish halt_trading; the bus is unavailable",
            ) from None
        context.metrics.control_requests.labels(ControlAction.HALT.value, "published").inc()
        return BreakGlassResponse(
            action=receipt.action.value,
            command=receipt.command,
            message_id=receipt.message_id,
            operator=operator.username,
        )

    return router
