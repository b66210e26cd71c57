"""The process wrapper shared by every service's ``__main__``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from tai_bus import create_bus
from tai_bus.api import MessageBus
from tai_core.clock import Clock, SystemClock
from tai_core.settings import ConfigurationError, ServiceSettings, deployed_broker_problem
from tai_store.database import Store, create_database_if_missing, is_database_unavailable
from tai_telemetry.logging import configure_logging, get_logger
from tai_telemetry.metrics import Telemetry
from tai_telemetry.ops import OpsServer

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
SettingsT_contra = TypeVar("SettingsT_contra", bound=ServiceSettings, contravariant=True)


class ServiceApp(Protocol):
    """What a service's composition root returns."""

    name: str

    async def start(self) -> None:
        """Rebuild state and start consuming."""
        ...

    async def stop(self) -> None:
        """Stop work; the runtime closes the bus and the store afterwards."""
        ...

    def ready(self) -> bool:
        """Return True when the service can do its job."""
        ...


class AppFactory(Protocol[SettingsT_contra]):
    """A service's ``create_app``."""

    def __call__(
        self,
        settings: SettingsT_contra,
        *,
        bus: MessageBus,
        store: Store,
        clock: Clock,
        telemetry: Telemetry,
    ) -> Any:
        """Build the app."""
        ...


async def migrate_once(store: Store) -> None:
    """Create the PostgreSQL database if needed and migrate (the store serialises migrations)."""
    if store.dialect == "postgresql":
        create_database_if_missing(store.url)
    await store.migrate()


async def serve(
    service: str,
    settings: SettingsT,
    factory: AppFactory[SettingsT],
    *,
    finished: Callable[[Any], asyncio.Event | None] | None = None,
) -> None:
    """Run a service until SIGTERM/SIGINT (or until ``finished(app)`` is set)."""
    ops_port = settings.ops_port
    log = get_logger(service)
    telemetry = Telemetry(service=service)
    clock = SystemClock()
    store = Store(settings.database_url)
    await migrate_once(store)
    bus = create_bus(
        settings.amqp_url,
        service,
        clock=clock,
        telemetry=telemetry,
        # a message that meets a database outage waits for the database, not the dead letters
        is_transient=is_database_unavailable,
    )
    await bus.start()
    app = factory(settings, bus=bus, store=store, clock=clock, telemetry=telemetry)
    await app.start()
    # Loopback unless OPS_HOST says otherwise (compose and Kubernetes: 0.0.0.0, for the probes).
    ops = OpsServer(telemetry, app.ready, settings.ops_host, ops_port) if ops_port else None
    if ops is not None:
        await ops.start()
    log.info("service started", ops_host=settings.ops_host, ops_port=ops_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    waiters = [asyncio.create_task(stop.wait())]
    done_event = finished(app) if finished else None
    if done_event is not None:
        waiters.append(asyncio.create_task(done_event.wait()))
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    log.info("service stopping")
    await app.stop()
    await bus.close()
    if ops is not None:
        await ops.stop()
    await store.close()
    log.info("service stopped")


def run_service(
    service: str,
    settings: SettingsT,
    factory: AppFactory[SettingsT],
    *,
    finished: Callable[[Any], asyncio.Event | None] | None = None,
) -> None:
    """Configure logging and run ``serve`` in a fresh event loop.

    A broker URL a deployed service must not use (guest beyond loopback, the vhost ``/``
    without topic permissions) stops the start with a ConfigurationError naming AMQP_URL.
    """
    problem = deployed_broker_problem(settings.amqp_url)
    if problem is not None:
        raise ConfigurationError(f"invalid configuration for {service}:\n  AMQP_URL: {problem}")
    configure_logging(settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(service, settings, factory, finished=finished))
