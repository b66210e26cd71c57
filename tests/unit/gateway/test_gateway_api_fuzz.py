"""Schemathesis fuzzes every documented operation in-process (ASGI) with an admin token:
no server error, and every success conforms to the documented response schema.

The gateway runs on an event loop of its own thread, as in production (its store and bus
belong to that loop); each generated request goes through httpx's ASGI transport on it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import schemathesis
from gateway_support import ADMIN_PASSWORD, add_user, fast_hasher, make_settings, token_for
from hypothesis import HealthCheck, given, settings
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from tai_bus import InMemoryBus
from tai_core.clock import SystemClock
from tai_gateway.app import GatewayApp, create_app
from tai_gateway.auth import PasswordHashing
from tai_store import Store
from tai_telemetry import Telemetry

ResultT = TypeVar("ResultT")
BASE_URL = "http://gateway.test"


class LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, ResultT]) -> ResultT:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class FuzzedGateway:
    """A started gateway, an ASGI client on its loop, and an admin token."""

    def __init__(self, directory: Path) -> None:
        self.runner = LoopThread()
        self.store = Store(f"sqlite+aiosqlite:///{directory / 'ledger.db'}")
        self.bus = InMemoryBus("gateway")
        self.app: GatewayApp = self.runner.run(self._build(directory))
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app.api), base_url=BASE_URL
        )
        self.token = self.runner.run(token_for(self.client, "alice", ADMIN_PASSWORD))

    async def _build(self, directory: Path) -> GatewayApp:
        await self.store.migrate()
        await add_user(self.store, PasswordHashing(fast_hasher()), "alice", ADMIN_PASSWORD, "admin")
        app = create_app(
            make_settings(
                api_rate_limit_per_minute=1_000_000,
                research_directory=str(directory / "backtests"),
            ),
            bus=self.bus,
            store=self.store,
            clock=SystemClock(),
            telemetry=Telemetry(service="gateway"),
            password_hasher=fast_hasher(),
        )
        await app.start()
        await self.bus.start()
        return app

    def request(self, kwargs: dict[str, Any]) -> httpx.Response:
        cookies = kwargs.pop("cookies", None) or {}
        self.client.cookies.clear()
        self.client.cookies.update(cookies)
        return self.runner.run(self.client.request(**kwargs))

    def close(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.run(self.app.stop())
        self.runner.run(self.bus.close())
        self.runner.run(self.store.close())
        self.runner.close()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedGateway]:
    gateway = FuzzedGateway(tmp_path_factory.mktemp("fuzz"))
    yield gateway
    gateway.close()


def test_no_operation_answers_with_a_server_error(fuzzed: FuzzedGateway) -> None:
    # Arrange: every operation of the gateway's own OpenAPI document, with an admin token
    schema = schemathesis.openapi.from_dict(fuzzed.app.api.openapi())
    headers = {"Authorization": f"Bearer {fuzzed.token}"}
    server_errors: list[str] = []
    nonconforming: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]

    # Act: hypothesis draws cases of each operation (schemathesis' pytest plugin is bypassed:
    # the requests must run on the gateway's own event loop)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            response = fuzzed.request(case.as_transport_kwargs(base_url=BASE_URL, headers=headers))
            seen = f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}"
            if response.status_code >= 500:
                server_errors.append(f"{seen}: {response.text[:300]}")
            elif 200 <= response.status_code < 300:
                # the typed response models: every success matches the documented schema
                try:
                    case.operation.validate_response(response)
                except FailureGroup as failure:
                    nonconforming.append(f"{seen}: {str(failure)[:300]}")

        check()

    # Assert
    assert len(operations) >= 20
    assert server_errors == []
    assert nonconforming == []
