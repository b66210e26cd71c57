"""The operations endpoint every service serves: /health, /ready and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tai_telemetry.metrics import Telemetry


def create_ops_app(
    telemetry: Telemetry, ready: Callable[[], bool], started: asyncio.Event | None = None
) -> Starlette:
    """Return an ASGI app answering liveness, readiness and Prometheus scrapes."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if started is not None:
            started.set()
        yield

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": telemetry.service})

    async def readiness(_request: Request) -> Response:
        is_ready = ready()
        return JSONResponse(
            {"ready": is_ready, "service": telemetry.service}, status_code=200 if is_ready else 503
        )

    async def metrics(_request: Request) -> Response:
        return Response(telemetry.render_metrics(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/health", health),
            Route("/ready", readiness),
            Route("/metrics", metrics),
        ],
    )


class OpsServer:
    """Serve the ops app on a port in the running event loop until stopped."""

    def __init__(
        self, telemetry: Telemetry, ready: Callable[[], bool], host: str, port: int
    ) -> None:
        self._started = asyncio.Event()
        config = uvicorn.Config(
            create_ops_app(telemetry, ready, self._started),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving in the background."""
        self._task = asyncio.create_task(self._server.serve(), name="ops-server")
        started = asyncio.create_task(self._started.wait())
        await asyncio.wait({self._task, started}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if self._task.done():
            self._task.result()  # a failed bind raises here, at start

    async def stop(self) -> None:
        """Stop serving."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
