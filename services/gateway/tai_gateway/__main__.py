"""Run the gateway service on its own: ``python -m tai_gateway`` (``trading-ai service gateway``).

Like every service it runs through :func:`tai_runtime.run_service`: the store is migrated, the
bus connected, and the shared ops server answers ``/health``, ``/ready`` and ``/metrics`` on
``OPS_PORT`` (8080, the port the compose health check and the Kubernetes probes use) — besides
the REST API (``GATEWAY_API_PORT``) and the console (``GATEWAY_CONSOLE_PORT``).
"""

from __future__ import annotations

import asyncio

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_core.settings import load_settings
from tai_gateway.app import GatewayApp, create_app
from tai_gateway.config import GatewaySettings
from tai_runtime import run_service
from tai_store import Store
from tai_telemetry.logging import get_logger
from tai_telemetry.metrics import Telemetry

PRODUCER = "gateway"


class GatewayService:
    """The gateway as a runtime service: start() also starts serving the API and the console."""

    name = PRODUCER

    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.finished = asyncio.Event()
        """Set when the HTTP servers stop on their own (the process then exits)."""
        self._serving: asyncio.Task[None] | None = None
        self._logger = get_logger("tai_gateway")

    async def start(self) -> None:
        """Subscribe the event stream, then serve the API and the console in the background."""
        await self.app.start()
        self._serving = asyncio.create_task(self.app.serve(), name="gateway-http")
        self._serving.add_done_callback(self._served)

    def _served(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._logger.error("gateway_http_failed", error=repr(task.exception()))
        self.finished.set()

    def ready(self) -> bool:
        """Return True once the stream is subscribed and both HTTP servers accept connections."""
        return self.app.ready() and self.app.started_servers

    async def stop(self) -> None:
        """Stop the HTTP servers and wait for them (the runtime closes the bus and store)."""
        await self.app.stop()
        if self._serving is not None:
            await asyncio.gather(self._serving, return_exceptions=True)


def create_service(
    settings: GatewaySettings,
    *,
    bus: MessageBus,
    store: Store,
    clock: Clock,
    telemetry: Telemetry,
) -> GatewayService:
    """Build the gateway for :func:`tai_runtime.run_service`."""
    app = create_app(settings, bus=bus, store=store, clock=clock, telemetry=telemetry)
    return GatewayService(app)


def _finished(service: GatewayService) -> asyncio.Event:
    return service.finished


def main() -> None:
    """Load settings from the environment (failing fast, naming the setting) and serve."""
    run_service(PRODUCER, load_settings(GatewaySettings), create_service, finished=_finished)


if __name__ == "__main__":
    main()
