"""Dependencies every route shares: the context, the caller, rate limits and role checks."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Query, Request, Response, status
from fastapi.security import OAuth2PasswordBearer
from pydantic import AwareDatetime

from tai_gateway.auth import InvalidTokenError, Principal, Role
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction, ControlDeniedError
from tai_gateway.paging import Cursor, InvalidCursorError, Page, PageRequest

ItemT = TypeVar("ItemT")

API_CHANNEL = "api"
MAXIMUM_ROWS = 1_000
DEFAULT_ROWS = 100

RowLimit = Annotated[int, Query(ge=1, le=MAXIMUM_ROWS, description="Rows to return")]
NEXT_CURSOR_HEADER = "X-Next-Cursor"
PAGED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One page, newest first",
        "headers": {
            NEXT_CURSOR_HEADER: {
                "description": "Pass as ``cursor`` for the next (older) page; absent on the last",
                "schema": {"type": "string"},
            },
            "Link": {
                "description": 'The next page\'s URL, rel="next"; absent on the last',
                "schema": {"type": "string"},
            },
        },
    }
}
"""The documented headers of every paged list."""


def client_address(request: Request) -> str:
    """Return the caller's address (a trusted proxy's X-Forwarded-For, else the peer)."""
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


async def session_principal(context: GatewayContext, token: str) -> Principal:
    """Return the principal of a bearer token's live session, or raise InvalidTokenError.

    The token's signature and expiry are checked first (cheap, no I/O), then its session
    and the user's current role are read from the store: a revoked session, a removed user
    or a changed role take effect on the next request.
    """
    claims = context.tokens.verify(token)
    principal = await context.sessions.principal(claims.session_id, claims.username)
    if principal is None:
        raise InvalidTokenError("session ended (signed out, revoked, or the account changed)")
    return principal


async def current_principal(context: Context, token: Annotated[str, Depends(_bearer)]) -> Principal:
    """Return the bearer token's principal (401 when invalid), rate limited per user."""
    try:
        principal = await session_principal(context, token)
    except InvalidTokenError as error:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"invalid bearer token: {error}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    enforce_rate_limit(context, f"user:{principal.username}")
    return principal


Authenticated = Annotated[Principal, Depends(current_principal)]
_optional_bearer = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)


class ControlCaller:
    """A dependency like ``current_principal`` that also audits and alerts on a 401.

    A control call without valid credentials is an attack signal, not a stale page: the
    refusal is written to the audit log and raises a (rate-limited) alert. The caller's
    address is rate limited first, so refusals cannot flood the audit table either. The
    route's action is known from this dependency, so a malformed body sent to a control
    route is audited as a refused action too (see ``tai_gateway.guards``).
    """

    def __init__(self, action: ControlAction) -> None:
        self.action = action

    async def __call__(
        self,
        context: Context,
        request: Request,
        token: Annotated[str | None, Depends(_optional_bearer)],
    ) -> Principal:
        """Return the caller's principal, or audit, alert and raise 401."""
        try:
            if not token:
                raise InvalidTokenError("no bearer token")
            principal = await session_principal(context, token)
        except InvalidTokenError as error:
            source = client_address(request)
            enforce_rate_limit(context, f"ip:{source}")
            context.metrics.control_requests.labels(self.action.value, "unauthenticated").inc()
            await context.control.record_unauthenticated(
                self.action, channel=API_CHANNEL, source=source, error=str(error)
            )
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=f"invalid bearer token: {error}",
                headers={"WWW-Authenticate": "Bearer"},
            ) from None
        enforce_rate_limit(context, f"user:{principal.username}")
        return principal


def control_caller(action: ControlAction) -> ControlCaller:
    """Return the dependency authenticating (and auditing) callers of ``action``."""
    return ControlCaller(action)


HaltCaller = Annotated[Principal, Depends(control_caller(ControlAction.HALT))]
ResumeCaller = Annotated[Principal, Depends(control_caller(ControlAction.RESUME))]
FlattenCaller = Annotated[Principal, Depends(control_caller(ControlAction.FLATTEN))]
StrategyCaller = Annotated[Principal, Depends(control_caller(ControlAction.CONFIGURE_STRATEGY))]
PromoteCaller = Annotated[Principal, Depends(control_caller(ControlAction.PROMOTE_MODEL))]
RollbackCaller = Annotated[Principal, Depends(control_caller(ControlAction.ROLLBACK_MODEL))]
RequeueCaller = Annotated[Principal, Depends(control_caller(ControlAction.REQUEUE_DEAD_LETTER))]
DiscardCaller = Annotated[Principal, Depends(control_caller(ControlAction.DISCARD_DEAD_LETTER))]
BacktestCaller = Annotated[Principal, Depends(control_caller(ControlAction.RUN_BACKTEST))]


async def authorize(
    context: GatewayContext, principal: Principal, action: ControlAction, subject: str
) -> None:
    """Raise 403 unless the role allows ``action``; a refusal is audited and alerted."""
    try:
        await context.control.authorize(principal, action, channel=API_CHANNEL, subject=subject)
    except ControlDeniedError as error:
        context.metrics.control_requests.labels(action.value, "denied").inc()
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(error)) from None


def require_admin(principal: Authenticated) -> Principal:
    """Return the principal when it is an admin, else raise 403."""
    if not principal.role.allows(Role.ADMIN):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this needs the admin role")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]


def page_request(
    limit: RowLimit = DEFAULT_ROWS,
    cursor: Annotated[
        str | None,
        Query(max_length=512, description=f"The {NEXT_CURSOR_HEADER} of the previous page"),
    ] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Only items at or after this instant")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Only items before this instant")
    ] = None,
) -> PageRequest:
    """Return the requested page; 422 for a cursor this API did not issue or an empty window."""
    try:
        decoded = Cursor.decode(cursor) if cursor else None
    except InvalidCursorError as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"cursor: {error}"
        ) from None
    if since is not None and until is not None and since >= until:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="since must be before until"
        )
    return PageRequest(limit, decoded, since, until)


Paging = Annotated[PageRequest, Depends(page_request)]


def paged(request: Request, response: Response, page: Page[ItemT]) -> list[ItemT]:
    """Return a page's items; point to the next page in the X-Next-Cursor and Link headers."""
    if page.next_cursor is not None:
        token = page.next_cursor.encode()
        following = request.url.include_query_params(cursor=token)
        response.headers[NEXT_CURSOR_HEADER] = token
        response.headers["Link"] = f'<{following.path}?{following.query}>; rel="next"'
    return page.items
