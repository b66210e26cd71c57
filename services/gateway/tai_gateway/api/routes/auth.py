"""Bearer tokens for the OAuth2 password flow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from tai_gateway.api.dependencies import (
    API_CHANNEL,
    Authenticated,
    Context,
    client_address,
    enforce_rate_limit,
)
from tai_gateway.api.models import TokenResponse
from tai_gateway.guards import StrictJsonRoute
from tai_gateway.login import LoginOutcome


def router() -> APIRouter:
    """Return the token route (OAuth2 password flow)."""
    router = APIRouter(prefix="/api", tags=["auth"], route_class=StrictJsonRoute)

    @router.post("/token")
    async def issue_token(
        context: Context,
        request: Request,
        form: Annotated[OAuth2PasswordRequestForm, Depends()],
    ) -> TokenResponse:
        """Exchange a username and password for a bearer token (OAuth2 password flow)."""
        source = client_address(request)
        enforce_rate_limit(context, f"ip:{source}")
        result = await context.login.login(
            form.username, form.password, channel=API_CHANNEL, source=source
        )
        context.metrics.logins.labels(API_CHANNEL, result.outcome.value).inc()
        if result.outcome is LoginOutcome.THROTTLED:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=result.message,
                headers={"Retry-After": str(result.retry_after_seconds)},
            )
        if result.outcome is not LoginOutcome.SUCCEEDED or result.principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=result.message,
                headers={"WWW-Authenticate": "Bearer"},
            )
        session = await context.sessions.open(
            result.principal.username,
            channel=API_CHANNEL,
            source=source,
            lifetime=context.tokens.lifetime,
        )
        issued = context.tokens.issue(
            result.principal.username, session.session_id, session.expires_at
        )
        lifetime = issued.expires_at - context.clock.now()
        return TokenResponse(
            access_token=issued.token,
            expires_in=int(lifetime.total_seconds()),
            role=result.principal.role,
        )

    @router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
    async def logout(context: Context, principal: Authenticated, request: Request) -> Response:
        """End every session of the caller, API tokens and console cookies alike."""
        ended = await context.sessions.revoke_user(principal.username)
        await context.ledger.audit(
            actor=principal.username,
            action="logout",
            subject=API_CHANNEL,
            outcome="sessions_revoked",
            details={"sessions": ended, "source": client_address(request)[:128]},
        )
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
