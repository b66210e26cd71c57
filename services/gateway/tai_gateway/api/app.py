"""Build the FastAPI application from the route modules."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from tai_gateway.api.routes import auth, control, ledger, operations, research, system
from tai_gateway.context import GatewayContext


def create_api(context: GatewayContext) -> FastAPI:
    """Build the FastAPI application over the shared gateway context."""
    api = build_api()
    api.state.context = context
    return api


def build_api() -> FastAPI:
    """Build the application's routes and documentation (no context: nothing can be served)."""
    api = FastAPI(
        title="Trading AI Secure gateway",
        version="1",
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
