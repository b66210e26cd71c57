"""Bearer tokens for the OAuth2 password flow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from tai_gateway.api.dependencies import (
    API_CHANNEL,
    Context,
    client_address,
    enforce_rate_limit,
)
from tai_gateway.api.models import TokenResponse
from tai_gateway.login import LoginOutcome


def router() -> APIRouter:
    """Return the token route (OAuth2 password flow)."""
    router = APIRouter(prefix="/api", tags=["auth"])

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
