"""A gateway served on free ports in a background thread, and headless Chromium to drive it."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import SystemClock
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.control import HaltTrading
from tai_events.orders import FillExecuted, Side
from tai_events.risk import RiskStateChanged, TradingState
from tai_events.topics import CONTROL_EXCHANGE, CONTROL_HALT
from tai_gateway.app import GatewayApp, create_app
from tai_gateway.config import GatewaySettings
from tai_gateway.users import add_user
from tai_store import Store
from tai_telemetry import Telemetry

ResultT = TypeVar("ResultT")
SECRET = "browser-test-session-secret-0123456789abcdef"
PASSWORDS = {
    "alice": "desk-admin-passphrase",
    "tom": "desk-trader-passphrase",
    "victor": "desk-viewer-passphrase",
}
ROLES = {"alice": "admin", "tom": "trader", "victor": "viewer"}
SEEDED_AT = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def fill(number: int, at: datetime, symbol: str = "EURUSD") -> FillExecuted:
    """Return a fill numbered ``number``."""
    return FillExecuted(
        fill_id=f"browser-fill-{number}",
        order_id=f"browser-order-{number}",
        strategy="sma_cross",
        symbol=symbol,
        side=Side.BUY if number % 2 else Side.SELL,
        quantity=1000.0 * number,
        price=1.1 + number / 1000,
        commission=0.5,
        filled_at=at,
        broker="paper",
    )


@dataclass
class RunningGateway:
    """A gateway serving in a background event loop."""

    app: GatewayApp
    bus: InMemoryBus
    store: Store
    loop: asyncio.AbstractEventLoop
    console_url: str
    api_url: str

    def run(self, coroutine: Coroutine[Any, Any, ResultT]) -> ResultT:
        """Run a coroutine on the gateway's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)


async def _fake_risk(bus: InMemoryBus) -> None:
    # Risk is another service: reply to a halt the way it would, with RiskStateChanged.
    async def on_halt(envelope: Envelope[Message]) -> None:
        command = envelope.message
        assert isinstance(command, HaltTrading)
        await bus.publish(
            RiskStateChanged(
                state=TradingState.HALTED,
                previous_state=TradingState.ACTIVE,
                reason=command.reason,
                equity=100_250.0,
                peak_equity=100_250.0,
                drawdown_pct=0.0,
                daily_pnl=250.0,
                changed_at=datetime.now(UTC),
                changed_by=command.requested_by,
            ),
            cause=envelope.headers,
        )

    await bus.subscribe(
        Subscription("test.fake-risk", [Binding(CONTROL_HALT, CONTROL_EXCHANGE)], on_halt)
    )


async def _seed(store: Store) -> None:
    await store.migrate()
    for username, password in PASSWORDS.items():
        await add_user(store, username, password, ROLES[username])
    async with store.transaction() as unit:
        for number in (1, 2, 3):
            await unit.fills.add(fill(number, SEEDED_AT + timedelta(hours=number)))
        for hour, equity in enumerate((100_000.0, 100_120.0, 99_980.0, 100_250.0)):
            await unit.snapshots.add("paper", SEEDED_AT + timedelta(hours=hour), 100_000.0, equity)


@pytest.fixture(scope="module")
def running_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gateway-loop", daemon=True)
    thread.start()
    database = tmp_path_factory.mktemp("gateway") / "ledger.db"

    async def build() -> tuple[GatewayApp, InMemoryBus, Store]:
        store = Store(f"sqlite+aiosqlite:///{database}")
        await _seed(store)
        telemetry = Telemetry(service="gateway")
        bus = InMemoryBus("gateway", telemetry=telemetry)
        settings = GatewaySettings.model_validate(
            {
                "session_secret": SECRET,
                "session_cookie_secure": False,  # the test server speaks plain HTTP
                "api_port": free_port(),
                "console_port": free_port(),
                "log_level": "WARNING",
            }
        )
        app = create_app(settings, bus=bus, store=store, clock=SystemClock(), telemetry=telemetry)
        await _fake_risk(bus)
        await app.start()
        await bus.start()
        return app, bus, store

    app, bus, store = asyncio.run_coroutine_threadsafe(build(), loop).result(timeout=60)
    serving = asyncio.run_coroutine_threadsafe(app.serve(), loop)
    gateway = RunningGateway(
        app=app,
        bus=bus,
        store=store,
        loop=loop,
        console_url=f"http://127.0.0.1:{app.settings.console_port}",
        api_url=f"http://127.0.0.1:{app.settings.api_port}",
    )
    deadline = time.monotonic() + 30
    while not app.started_servers:  # uvicorn offers no "started" event: poll its flag
        if serving.done() or time.monotonic() > deadline:
            pytest.fail(f"the gateway did not start serving: {serving}")
        time.sleep(0.05)
    yield gateway
    gateway.run(app.stop())
    serving.result(timeout=30)
    gateway.run(bus.close())
    gateway.run(store.close())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip("chromium and chromedriver are not installed: run scripts/ensure-chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
