"""The gateway under attack: its app, an HTTP client on it, and what its bus carried."""

from __future__ import annotations

import httpx

from tai_bus import InMemoryBus
from tai_core.clock import FakeClock
from tai_events import AlertRaised, Message
from tai_gateway.app import GatewayApp
from tai_store import Store


class Gateway:
    """The app, an HTTP client on it, and what its bus carried."""

    def __init__(
        self,
        app: GatewayApp,
        client: httpx.AsyncClient,
        bus: InMemoryBus,
        store: Store,
        clock: FakeClock,
    ) -> None:
        self.app = app
        self.clock = clock
        self.store = store
        self.client = client
        self.bus = bus
        self.commands: list[Message] = []
        self.alerts: list[AlertRaised] = []
