"""Build the FastAPI application from the route modules."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tai_gateway.api.dependencies import API_CHANNEL, client_address, session_principal
from tai_gateway.api.routes import auth, control, ledger, operations, research, system
from tai_gateway.auth import InvalidTokenError
from tai_gateway.breakglass import break_glass_router, operator_verifier
from tai_gateway.context import GatewayContext
from tai_gateway.control import ANONYMOUS, ControlAction
from tai_gateway.guards import INVALID_REQUEST, control_action_of, safe_errors

API_VERSION = "1.0.0"
"""Semantic version of the published API (proto/openapi.json): a field or route added bumps
the minor version; a field removed or changed in meaning or type is a new major version."""
API_DESCRIPTION = (
    "Read the ledger, the risk state and the broker's queues; send control commands. "
    "Every route but /health, /ready and /metrics needs a bearer token (POST /api/token). "
    "Growing lists are paged newest first: `limit`, `since`/`until` (ISO 8601 with a time "
    "zone) and `cursor`, which is the `X-Next-Cursor` header of the previous page (the `Link` "
    'header, rel="next", holds the whole next URL); the last page has neither header. '
    "Within a major version changes are additive only: clients must ignore unknown fields."
)


async def _audit_invalid_control(
    context: GatewayContext, request: Request, action: ControlAction, errors: list[dict[str, Any]]
) -> bool:
    """Audit a control call refused for its body; return False when the caller is rate limited."""
    source = client_address(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    actor = ANONYMOUS
    if scheme.lower() == "bearer" and token:
        try:
            actor = (await session_principal(context, token.strip())).username
        except InvalidTokenError:
            actor = ANONYMOUS
    if not context.limiter.allow(f"user:{actor}" if actor != ANONYMOUS else f"ip:{source}").allowed:
        context.metrics.rate_limited.inc()
        return False
    context.metrics.control_requests.labels(action.value, INVALID_REQUEST).inc()
    await context.ledger.audit(
        actor=actor,
        action=action.value,
        subject=request.url.path[:256],
        outcome=INVALID_REQUEST,
        details={
            "channel": API_CHANNEL,
            "source": source[:128],
            "errors": [error["type"] for error in errors],
        },
    )
    return True


def _install_guards(api: FastAPI, context: GatewayContext) -> None:
    """Answer malformed requests with safe 4xx (audited on control routes)."""

    async def on_validation_error(request: Request, error: Exception) -> Response:
        if not isinstance(error, RequestValidationError):
            raise error
        errors = safe_errors(error.errors())
        action = control_action_of(request.scope.get("route"))
        if action is not None and not await _audit_invalid_control(
            context, request, action, errors
        ):
            return JSONResponse({"detail": "rate limit exceeded"}, status_code=429)
        return JSONResponse({"detail": errors}, status_code=422)

    api.add_exception_handler(RequestValidationError, on_validation_error)


def create_api(context: GatewayContext) -> FastAPI:
    """Build the FastAPI application over the shared gateway context.

    Bodies are capped (``GATEWAY_API_MAX_BODY_BYTES``, 413 before they are read), JSON is
    parsed strictly (no NaN/Infinity) and validation errors never echo huge values.
    """
    api = build_api(max_body_size=context.settings.api_max_body_bytes)
    api.state.context = context
    api.state.operator_verifier = operator_verifier(context)
    _install_guards(api, context)
    return api


def build_api(*, max_body_size: int | None = None) -> FastAPI:
    """Build the application's routes and documentation (no context: nothing can be served)."""
    api = FastAPI(
        title="Trading AI Secure gateway",
        version=API_VERSION,
        description=API_DESCRIPTION,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        max_body_size=max_body_size,
    )
    for router in (
        operations.router(),
        auth.router(),
        ledger.router(),
        control.router(),
        research.router(),
        system.router(),
        break_glass_router(),
    ):
        api.include_router(router)
    return api


def openapi_document() -> dict[str, Any]:
    """Return the API's OpenAPI document (published as proto/openapi.json)."""
    document: dict[str, Any] = build_api().openapi()
    return document


def render_openapi() -> str:
    """Return proto/openapi.json's exact text."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
