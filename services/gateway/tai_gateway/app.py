"""Composition root: the gateway's API, console, bus subscription and servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import dash
import uvicorn
from a2wsgi import WSGIMiddleware
from argon2 import PasswordHasher
from fastapi import FastAPI

from tai_bus import InMemoryBus
from tai_bus.api import Binding, MessageBus, Subscription
from tai_core.clock import Clock
from tai_events.topics import EVENTS_EXCHANGE, EVERYTHING, queue_name
from tai_gateway.alerts import RefusalAlerts
from tai_gateway.api import create_api
from tai_gateway.auth import PasswordHashing, TokenSigner
from tai_gateway.backtests import BacktestRunner
from tai_gateway.bridge import LoopBridge
from tai_gateway.config import GatewaySettings
from tai_gateway.console import create_console
from tai_gateway.context import GatewayContext, GatewayMetrics
from tai_gateway.control import ControlService
from tai_gateway.handlers import make_stream_handler
from tai_gateway.ledger import GatewayLedger
from tai_gateway.live import LiveState
from tai_gateway.login import LoginService
from tai_gateway.operations import AmqpOperations, BrokerOperations, MemoryOperations
from tai_gateway.ratelimit import TokenBucketLimiter
from tai_gateway.sessions import SessionStore
from tai_gateway.throttle import BackoffPolicy, LoginThrottle
from tai_store import Store
from tai_telemetry.logging import get_logger
from tai_telemetry.metrics import Telemetry

STREAM_QUEUE = queue_name("gateway", "stream")
"""``tai.gateway.stream``: every event, for the live views."""


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner (two share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def server_config(settings: GatewaySettings, app: Any, host: str, port: int) -> uvicorn.Config:
    """Return the uvicorn configuration of one of the gateway's HTTP servers.

    Forwarded headers (X-Forwarded-For/-Proto) are believed only from the configured trusted
    proxies (``GATEWAY_TRUSTED_PROXIES``); with none, they are ignored, so no client can pick
    the address the rate limiter, the login throttle and the audit log see.
    """
    proxies = list(settings.trusted_proxies)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_level=settings.log_level.lower(),
        access_log=False,
        server_header=False,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or [],
    )


class GatewayApp:
    """The running gateway: subscribe to the event stream, serve the API and the console."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        bus: MessageBus,
        clock: Clock,
        telemetry: Telemetry,
        ledger: GatewayLedger,
        login: LoginService,
        tokens: TokenSigner,
        sessions: SessionStore,
    ) -> None:
        self.settings = settings
        self.live = LiveState()
        self._bus = bus
        self._bridge = LoopBridge()
        self._subscribed = False
        self._servers: list[_EmbeddedServer] = []
        self._stopping = asyncio.Event()
        self._logger = get_logger("tai_gateway")
        self._operations: BrokerOperations = (
            MemoryOperations(bus)
            if isinstance(bus, InMemoryBus)
            else AmqpOperations(settings.amqp_url)
        )
        metrics = GatewayMetrics.create(telemetry)
        self.context = GatewayContext(
            settings=settings,
            clock=clock,
            telemetry=telemetry,
            metrics=metrics,
            ledger=ledger,
            live=self.live,
            login=login,
            tokens=tokens,
            sessions=sessions,
            limiter=TokenBucketLimiter(settings.api_rate_limit_per_minute, 60.0, clock),
            control=ControlService(
                bus,
                ledger,
                clock,
                settle=bus.drain if isinstance(bus, InMemoryBus) and bus.deterministic else None,
                alerts=RefusalAlerts(bus, clock, metrics.refusal_alerts),
            ),
            readiness=self._readiness,
            operations=self._operations,
            backtests=BacktestRunner(
                settings.research_directory,
                settings.research_data_directory,
                clock,
                max_running=settings.max_running_backtests,
            ),
        )
        self.api: FastAPI = create_api(self.context)
        self.dash_app: dash.Dash = create_console(self.context, self._bridge)

    async def _readiness(self) -> dict[str, bool]:
        return {"store": await self.context.ledger.ping(), "bus": self.ready()}

    async def start(self) -> None:
        """Subscribe the stream queue and attach the console to this event loop."""
        self._bridge.attach(asyncio.get_running_loop())
        if not self._subscribed:
            await self._bus.subscribe(
                Subscription(
                    queue=STREAM_QUEUE,
                    bindings=[Binding(EVERYTHING, EVENTS_EXCHANGE)],
                    handler=make_stream_handler(self.live),
                )
            )
            self._subscribed = True
        self._logger.info("gateway_started", queue=STREAM_QUEUE)

    def ready(self) -> bool:
        """Return True once the stream subscription is running."""
        return self._subscribed and self._bridge.attached

    def _server(self, app: Any, host: str, port: int) -> _EmbeddedServer:
        return _EmbeddedServer(server_config(self.settings, app, host, port))

    async def serve(self) -> None:
        """Serve the API and the console in this event loop until stop() is called."""
        if not self.ready():
            await self.start()
        console = WSGIMiddleware(self.dash_app.server, workers=self.settings.console_workers)
        self._servers = [
            self._server(self.api, self.settings.api_host, self.settings.api_port),
            self._server(console, self.settings.console_host, self.settings.console_port),
        ]
        self._logger.info(
            "gateway_serving",
            api=f"http://{self.settings.api_host}:{self.settings.api_port}",
            console=f"http://{self.settings.console_host}:{self.settings.console_port}",
        )
        tasks = [asyncio.create_task(server.serve()) for server in self._servers]
        try:
            await self._stopping.wait()
        finally:
            for server in self._servers:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def started_servers(self) -> bool:
        """Return True once both HTTP servers accept connections."""
        return len(self._servers) == 2 and all(server.started for server in self._servers)

    async def stop(self) -> None:
        """Stop serving (the bus is closed by whoever owns it)."""
        self._stopping.set()
        if isinstance(self._operations, AmqpOperations):
            await self._operations.close()


def create_app(
    settings: GatewaySettings,
    *,
    bus: MessageBus,
    store: Store,
    clock: Clock,
    telemetry: Telemetry,
    password_hasher: PasswordHasher | None = None,
) -> GatewayApp:
    """Wire the gateway from its settings and injected bus, store, clock and telemetry."""
    ledger = GatewayLedger(store, clock, settings.account)
    longest = timedelta(minutes=settings.login_backoff_max_minutes)
    forget = timedelta(minutes=settings.login_forget_minutes)
    base = timedelta(seconds=settings.login_backoff_seconds)
    throttle = LoginThrottle(
        store,
        per_account=BackoffPolicy(settings.login_max_failures, base, max(base, longest), forget),
        per_source=BackoffPolicy(
            settings.login_source_max_failures, base, max(base, longest), forget
        ),
    )
    secret = settings.session_secret.get_secret_value().encode("utf-8")
    return GatewayApp(
        settings,
        bus=bus,
        clock=clock,
        telemetry=telemetry,
        ledger=ledger,
        login=LoginService(ledger, PasswordHashing(password_hasher), throttle, clock),
        tokens=TokenSigner(secret, clock, timedelta(minutes=settings.token_minutes)),
        sessions=SessionStore(store, clock),
    )
