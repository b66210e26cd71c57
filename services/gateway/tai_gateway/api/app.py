"""Build the FastAPI application from the route modules."""

from __future__ import annotations

from fastapi import FastAPI

from tai_gateway.api.routes import auth, control, ledger, operations, research, system
from tai_gateway.context import GatewayContext


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
