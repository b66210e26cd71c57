"""The REST API: health, readiness, metrics, tokens, ledger reads and admin controls."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from tai_events.base import Symbol
from tai_gateway.auth import InvalidTokenError, Principal, Role
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction, ControlDeniedError
from tai_gateway.login import LoginOutcome

API_CHANNEL = "api"
MAXIMUM_ROWS = 1_000
DEFAULT_ROWS = 100

RowLimit = Annotated[int, Query(ge=1, le=MAXIMUM_ROWS, description="Rows to return")]


class TokenResponse(BaseModel):
    """An issued bearer token."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    role: Role


class ControlRequest(BaseModel):
    """Why a halt or resume is requested."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class FlattenRequest(ControlRequest):
    """Flatten one symbol, or every position when ``symbol`` is omitted."""

    symbol: Symbol | None = None


class ControlResponse(BaseModel):
    """The command published for a control request."""

    action: str
    command: str
    message_id: str


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return a DataFrame as JSON-ready records (ISO timestamps, NaN as null)."""
    if frame.empty:
        return []
    loaded: list[dict[str, Any]] = json.loads(
        frame.to_json(orient="records", date_format="iso", date_unit="us")
    )
    return loaded


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def get_context(request: Request) -> GatewayContext:
    """Return the gateway context the application was built with."""
    context: GatewayContext = request.app.state.context
    return context


Context = Annotated[GatewayContext, Depends(get_context)]
_bearer = OAuth2PasswordBearer(tokenUrl="/api/token")


def enforce_rate_limit(context: GatewayContext, key: str) -> None:
    """Take a token from ``key``'s bucket or raise 429 with Retry-After."""
    decision = context.limiter.allow(key)
    if not decision.allowed:
        context.metrics.rate_limited.inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="rate limit exceeded",
            headers={"Retry-After": str(max(1, round(decision.retry_after_seconds)))},
        )


def current_principal(context: Context, token: Annotated[str, Depends(_bearer)]) -> Principal:
    """Return the bearer token's principal (401 when invalid), rate limited per user."""
    try:
        principal = context.tokens.verify(token)
    except InvalidTokenError as error:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"invalid bearer token: {error}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    enforce_rate_limit(context, f"user:{principal.username}")
    return principal


Authenticated = Annotated[Principal, Depends(current_principal)]


def require_admin(principal: Authenticated) -> Principal:
    """Return the principal when it is an admin, else raise 403."""
    if not principal.role.allows(Role.ADMIN):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this needs the admin role")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]


def _operations_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health")
    def health() -> dict[str, str]:
        """Report that the process is alive."""
        return {"status": "ok"}

    @router.get("/ready")
    async def ready(context: Context) -> JSONResponse:
        """Report whether the store is reachable and the bus subscription is running."""
        checks = await context.readiness()
        is_ready = all(checks.values())
        return JSONResponse(
            {"ready": is_ready, "checks": checks},
            status_code=status.HTTP_200_OK if is_ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @router.get("/metrics")
    def metrics(context: Context) -> Response:
        """Expose the gateway's Prometheus metrics."""
        return Response(context.telemetry.render_metrics(), media_type=CONTENT_TYPE_LATEST)

    return router


def _auth_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["auth"])

    @router.post("/token")
    async def issue_token(
        context: Context,
        request: Request,
        form: Annotated[OAuth2PasswordRequestForm, Depends()],
    ) -> TokenResponse:
        """Exchange a username and password for a bearer token (OAuth2 password flow)."""
        source = _client_address(request)
        enforce_rate_limit(context, f"ip:{source}")
        result = await context.login.login(
            form.username, form.password, channel=API_CHANNEL, source=source
        )
        context.metrics.logins.labels(API_CHANNEL, result.outcome.value).inc()
        if result.outcome is not LoginOutcome.SUCCEEDED or result.principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=result.message,
                headers={"WWW-Authenticate": "Bearer"},
            )
        issued = context.tokens.issue(result.principal)
        lifetime = issued.expires_at - context.clock.now()
        return TokenResponse(
            access_token=issued.token,
            expires_in=int(lifetime.total_seconds()),
            role=result.principal.role,
        )

    return router


def _ledger_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["ledger"])

    @router.get("/fills")
    def fills(
        context: Context, _: Authenticated, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest fills, newest first."""
        return records(context.ledger.fills(limit))

    @router.get("/positions")
    def positions(context: Context, _: Authenticated) -> list[dict[str, Any]]:
        """Return the account's current positions."""
        return records(context.ledger.positions())

    @router.get("/orders")
    def orders(
        context: Context, _: Authenticated, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest orders."""
        return records(context.ledger.orders(limit))

    @router.get("/equity")
    def equity(context: Context, _: Authenticated) -> list[dict[str, Any]]:
        """Return the account's equity curve."""
        return records(context.ledger.equity_curve())

    @router.get("/risk/state")
    def risk_state(context: Context, _: Authenticated) -> dict[str, Any]:
        """Return the trading state: the latest seen on the bus, else the stored one."""
        live = context.live.snapshot().risk
        if live is not None:
            return {"source": "live", **live.model_dump(mode="json")}
        stored = context.ledger.trading_state()
        if stored is not None:
            return {
                "source": "store",
                "state": stored.state,
                "previous_state": stored.previous_state,
                "reason": stored.reason,
                "changed_by": stored.changed_by,
                "changed_at": stored.changed_at.isoformat(),
            }
        return {"source": "none", "state": None}

    @router.get("/audit")
    def audit(
        context: Context, _: AdminPrincipal, limit: RowLimit = DEFAULT_ROWS
    ) -> list[dict[str, Any]]:
        """Return the newest audit rows (admins only)."""
        return records(context.ledger.audit_log(limit))

    return router


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


def _control_router() -> APIRouter:
    router = APIRouter(prefix="/api/control", tags=["control"])
    accepted = status.HTTP_202_ACCEPTED

    @router.post("/halt", status_code=accepted)
    async def halt(
        context: Context, principal: Authenticated, body: ControlRequest
    ) -> ControlResponse:
        """Halt trading (kill switch); admins only."""
        return await _control(context, principal, ControlAction.HALT, body.reason)

    @router.post("/resume", status_code=accepted)
    async def resume(
        context: Context, principal: Authenticated, body: ControlRequest
    ) -> ControlResponse:
        """Resume trading; admins only."""
        return await _control(context, principal, ControlAction.RESUME, body.reason)

    @router.post("/flatten", status_code=accepted)
    async def flatten(
        context: Context, principal: Authenticated, body: FlattenRequest
    ) -> ControlResponse:
        """Close one symbol's position or every position; admins only."""
        return await _control(context, principal, ControlAction.FLATTEN, body.reason, body.symbol)

    return router


def create_api(context: GatewayContext) -> FastAPI:
    """Build the FastAPI application over the shared gateway context."""
    api = FastAPI(
        title="Trading AI Secure gateway",
        version="1",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    api.state.context = context
    for router in (_operations_router(), _auth_router(), _ledger_router(), _control_router()):
        api.include_router(router)
    return api
