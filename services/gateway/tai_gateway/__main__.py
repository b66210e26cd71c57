"""Run the gateway service on its own: ``python -m tai_gateway``."""

from __future__ import annotations

import asyncio
import signal

from tai_bus import create_bus
from tai_core.clock import SystemClock
from tai_core.settings import load_settings
from tai_gateway.app import create_app
from tai_gateway.config import GatewaySettings
from tai_store import Store
from tai_telemetry.logging import configure_logging
from tai_telemetry.metrics import Telemetry

PRODUCER = "gateway"


async def run(settings: GatewaySettings) -> None:
    """Connect the bus and the store, serve until SIGINT/SIGTERM, then shut down cleanly."""
    telemetry = Telemetry(service=PRODUCER)
    bus = create_bus(settings.amqp_url, PRODUCER, telemetry=telemetry)
    store = Store(settings.database_url)
    app = create_app(settings, bus=bus, store=store, clock=SystemClock(), telemetry=telemetry)
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, lambda: asyncio.ensure_future(app.stop()))
    await app.start()
    await bus.start()
    try:
        await app.serve()
    finally:
        await bus.close()
        await store.close()


def main() -> None:
    """Entry point."""
    settings = load_settings(GatewaySettings)
    configure_logging(settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
