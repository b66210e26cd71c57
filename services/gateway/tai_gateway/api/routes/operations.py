"""Health, readiness and Prometheus metrics (no authentication: probes and scrapers)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from tai_gateway.api.dependencies import AdminPrincipal, Context
from tai_gateway.api.models import Health, Readiness
from tai_gateway.guards import StrictJsonRoute


def router() -> APIRouter:
    """Return the probe and metrics routes."""
    router = APIRouter(tags=["operations"], route_class=StrictJsonRoute)

    @router.get("/health")
    def health() -> Health:
        """Report that the process is alive."""
        return Health()

    @router.get(
        "/ready",
        responses={503: {"model": Readiness, "description": "Not ready: a check failed"}},
    )
    async def ready(context: Context, response: Response) -> Readiness:
        """Report whether the store is reachable and the bus subscription is running."""
        checks = await context.readiness()
        is_ready = all(checks.values())
        if not is_ready:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Readiness(ready=is_ready, checks=checks)

    @router.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    def metrics(context: Context, _: AdminPrincipal) -> Response:
        """Expose the Prometheus metrics to admins (scrapers use the ops port, not this one).

        The registry carries account figures (equity, exposure, drawdown, P&L), so on the
        public API port it needs an admin token like the rest of the ledger.
        """
        return Response(context.telemetry.render_metrics(), media_type=CONTENT_TYPE_LATEST)

    return router
