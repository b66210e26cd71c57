"""Health, readiness and Prometheus metrics (no authentication: probes and scrapers)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from tai_gateway.api.dependencies import Context


def router() -> APIRouter:
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
