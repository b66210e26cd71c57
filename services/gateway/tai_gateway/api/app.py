"""Build the FastAPI application from the route modules."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from tai_gateway.api.routes import auth, control, ledger, operations, research, system
from tai_gateway.context import GatewayContext

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


def create_api(context: GatewayContext) -> FastAPI:
    """Build the FastAPI application over the shared gateway context."""
    api = build_api()
    api.state.context = context
    return api


def build_api() -> FastAPI:
    """Build the application's routes and documentation (no context: nothing can be served)."""
    api = FastAPI(
        title="Trading AI Secure gateway",
        version=API_VERSION,
        description=API_DESCRIPTION,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    for router in (
        operations.router(),
        auth.router(),
        ledger.router(),
        control.router(),
        research.router(),
        system.router(),
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
