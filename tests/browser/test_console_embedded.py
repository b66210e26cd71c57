"""The console of a real embedded system (ingestion, strategy, risk, execution, gateway).

A trader watches fills arrive during a replay; an admin's kill switch reaches the real risk
service, the console shows HALTED and risk rejects the orders that follow; a viewer's forged
halt is refused by the server. Screenshots of every tab go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from conftest import free_port
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as conditions
from selenium.webdriver.support.ui import WebDriverWait

from tai_cli.embedded import EmbeddedOptions, EmbeddedSystem
from tai_gateway.users import add_user
from tai_ingestion.samples import sample_path

pytestmark = pytest.mark.browser

ResultT = TypeVar("ResultT")
WAIT_SECONDS = 30
REPLAY_BARS = 400
REPLAY_SPEED = 60.0
"""Bars per second: the replay lasts several seconds, long enough to watch it live."""
PASSWORDS = {"tom": "desk-trader-passphrase", "victor": "desk-viewer-passphrase"}
TABS = ("live", "risk", "ml", "strategies", "research", "system")


@dataclass
class Embedded:
    """An embedded system running on an event loop of its own thread."""

    system: EmbeddedSystem
    loop: asyncio.AbstractEventLoop
    console_url: str

    def run(self, coroutine: Coroutine[Any, Any, ResultT]) -> ResultT:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)

    def start_replay(self) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(self.system.replay(), self.loop)

    @property
    def admin_password(self) -> str:
        assert self.system.admin_password is not None
        return self.system.admin_password


def _short_replay_file(directory: Path) -> Path:
    lines = sample_path("EURUSD.csv").read_text(encoding="utf-8").splitlines()
    path = directory / "EURUSD.csv"
    path.write_text("\n".join(lines[: REPLAY_BARS + 1]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Embedded]:
    research_data = tmp_path / "research-data"
    research_data.mkdir()
    replay_file = _short_replay_file(research_data)
    monkeypatch.setenv("GATEWAY_RESEARCH_DATA_DIRECTORY", str(research_data))
    monkeypatch.setenv("GATEWAY_RESEARCH_DIRECTORY", str(tmp_path / "backtests"))
    options = EmbeddedOptions(
        data_directory=tmp_path / "data",
        replay_file=replay_file,
        replay_speed=REPLAY_SPEED,
        serve_console=True,
        api_port=free_port(),
        console_port=free_port(),
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="embedded-loop", daemon=True)
    thread.start()

    async def build() -> EmbeddedSystem:
        system = EmbeddedSystem(options)
        await system.start()
        for username, password in PASSWORDS.items():
            role = "trader" if username == "tom" else "viewer"
            await add_user(system.store, username, password, role)
        return system

    system = asyncio.run_coroutine_threadsafe(build(), loop).result(timeout=120)
    deadline = time.monotonic() + 30
    while system.gateway is None or not system.gateway.started_servers:
        if time.monotonic() > deadline:  # uvicorn offers no "started" event: poll its flag
            pytest.fail("the embedded console did not start serving")
        time.sleep(0.05)
    yield Embedded(system, loop, f"http://127.0.0.1:{options.console_port}")
    asyncio.run_coroutine_threadsafe(system.stop(), loop).result(timeout=60)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def wait(
    driver: webdriver.Chrome, seconds: float = WAIT_SECONDS
) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(driver, seconds, poll_frequency=0.1)


def sign_in(driver: webdriver.Chrome, url: str, username: str, password: str) -> None:
    driver.get(f"{url}/")
    wait(driver).until(conditions.presence_of_element_located((By.ID, "username")))
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    try:
        wait(driver).until(conditions.presence_of_element_located((By.ID, "whoami")))
    except TimeoutException:
        pytest.fail(f"console did not load after sign-in: {driver.page_source[:2000]}")


def fill_rows(driver: webdriver.Chrome) -> int:
    tables = driver.find_elements(By.CSS_SELECTOR, "#fills-table tbody tr")
    return len(tables)


def open_tab(driver: webdriver.Chrome, tab: str) -> None:
    driver.find_element(By.ID, f"tab-{tab}").click()


def test_trader_sees_fills_appear_live_during_a_replay(
    browser: webdriver.Chrome, embedded: Embedded, screenshots: Path
) -> None:
    # Arrange
    sign_in(browser, embedded.console_url, "tom", PASSWORDS["tom"])
    wait(browser).until(conditions.presence_of_element_located((By.ID, "fills-empty")))
    # Act
    replay = embedded.start_replay()
    # Assert: the first fills arrive while bars are still being replayed, then more follow
    wait(browser).until(lambda driver: fill_rows(driver) >= 1)
    first_seen = fill_rows(browser)
    assert not replay.done(), "the replay finished before the console showed its first fill"
    wait(browser).until(lambda driver: fill_rows(driver) > first_seen)
    replay.result(timeout=120)
    stored = embedded.run(_stored_fill_count(embedded.system))
    wait(browser).until(lambda driver: fill_rows(driver) == min(stored, 100))
    wait(browser).until(
        conditions.presence_of_element_located(
            (By.CSS_SELECTOR, "#candles-graph .cartesianlayer .trace")
        )
    )
    browser.save_screenshot(str(screenshots / "embedded-live-trader.png"))


async def _stored_fill_count(system: EmbeddedSystem) -> int:
    async with system.store.transaction() as unit:
        return len(await unit.fills.list())


async def _trading_state_rejections(system: EmbeddedSystem) -> list[str]:
    """Return the orders refused because trading was HALTED (not REDUCING by a breaker)."""
    async with system.store.transaction() as unit:
        entries = await unit.audit.list(action="risk.decision")
    rejected = []
    for entry in entries:
        if entry.outcome != "rejected":
            continue
        for verdict in entry.details.get("verdicts", []):
            halted = "HALTED" in verdict["reason"]
            if verdict["rule"] == "trading_state" and not verdict["passed"] and halted:
                rejected.append(entry.subject)
    return rejected


def test_admin_kill_switch_halts_trading_and_risk_rejects_new_orders(
    browser: webdriver.Chrome, embedded: Embedded, screenshots: Path
) -> None:
    # Arrange
    sign_in(browser, embedded.console_url, "admin", embedded.admin_password)
    open_tab(browser, "risk")
    wait(browser).until(conditions.element_to_be_clickable((By.ID, "halt-button")))
    browser.find_element(By.ID, "control-reason").send_keys("browser test: kill switch")
    # Act
    browser.find_element(By.ID, "halt-button").click()
    # Assert: the real risk service answered and the console shows it
    wait(browser).until(
        conditions.text_to_be_present_in_element((By.ID, "halt-feedback"), "HaltTrading sent")
    )
    wait(browser).until(
        conditions.text_to_be_present_in_element((By.ID, "trading-state"), "HALTED")
    )
    # new orders are rejected by risk's trading_state rule
    embedded.start_replay().result(timeout=120)
    rejected = embedded.run(_trading_state_rejections(embedded.system))
    assert rejected, "no order was rejected by the trading_state rule after the halt"
    assert embedded.run(_stored_fill_count(embedded.system)) == 0
    live_rejections = embedded.system.gateway.live.snapshot().rejections  # type: ignore[union-attr]
    assert {rejection.rule for rejection in live_rejections} == {"trading_state"}
    wait(browser).until(
        conditions.text_to_be_present_in_element((By.ID, "rejections"), "trading is HALTED")
    )
    browser.save_screenshot(str(screenshots / "embedded-risk-halted.png"))


def test_viewer_cannot_halt_even_with_a_forged_callback(
    browser: webdriver.Chrome, embedded: Embedded
) -> None:
    # Arrange
    sign_in(browser, embedded.console_url, "victor", PASSWORDS["victor"])
    open_tab(browser, "risk")
    wait(browser).until(conditions.presence_of_element_located((By.ID, "limits-table")))
    assert browser.find_elements(By.ID, "halt-button") == []
    cookies = {cookie["name"]: cookie["value"] for cookie in browser.get_cookies()}
    forged = {
        "output": "halt-feedback.children",
        "outputs": {"id": "halt-feedback", "property": "children"},
        "inputs": [{"id": "halt-button", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["halt-button.n_clicks"],
        "state": [{"id": "control-reason", "property": "value", "value": "forged by a viewer"}],
    }
    # Act
    response = httpx.post(
        f"{embedded.console_url}/_dash-update-component",
        json=forged,
        cookies=cookies,
        headers={"X-CSRFToken": cookies["_csrf_token"]},
    )
    # Assert: refused, never published, and trading goes on
    assert response.status_code == 403
    embedded.start_replay().result(timeout=120)
    assert embedded.run(_trading_state_rejections(embedded.system)) == []
    assert embedded.run(_stored_fill_count(embedded.system)) > 0
    assert "HALTED" not in browser.find_element(By.ID, "trading-state").text
    # a viewer still reads every tab (the refreshes write to targets hidden from its role)
    for tab, shown in (
        ("ml", "#models-empty, #models-table"),
        ("research", "#backtests-table-empty, #backtests-table"),
        ("system", "#queues-table"),
    ):
        open_tab(browser, tab)
        wait(browser).until(conditions.presence_of_element_located((By.CSS_SELECTOR, shown)))
    assert "visible to admins" in browser.find_element(By.ID, "audit").text


def test_every_tab_renders_after_a_replay(
    browser: webdriver.Chrome, embedded: Embedded, screenshots: Path
) -> None:
    # Arrange: a finished replay, then the admin sees everything
    embedded.start_replay().result(timeout=120)
    sign_in(browser, embedded.console_url, "admin", embedded.admin_password)
    expected = {
        "live": (By.ID, "fills-table"),
        "risk": (By.ID, "limits-table"),
        "ml": (By.CSS_SELECTOR, "#models-empty, #models-table"),
        "strategies": (By.ID, "strategies-table"),
        "research": (By.CSS_SELECTOR, "#backtests-table-empty, #backtests-table"),
        "system": (By.ID, "queues-table"),
    }
    for tab in TABS:
        # Act
        open_tab(browser, tab)
        # Assert
        wait(browser).until(conditions.presence_of_element_located(expected[tab]))
        browser.save_screenshot(str(screenshots / f"console-tab-{tab}.png"))


@pytest.fixture
def risk_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Configure risk off its defaults (the embedded risk service reads RISK_*)."""
    monkeypatch.setenv("RISK_DAILY_LOSS_HALT_PCT", "4.5")
    monkeypatch.setenv("RISK_CVAR_CONFIDENCE", "0.99")


def test_the_risk_tab_shows_the_breakers_and_confidences_risk_configured(
    risk_configured: None, browser: webdriver.Chrome, embedded: Embedded
) -> None:
    # Arrange
    sign_in(browser, embedded.console_url, "admin", embedded.admin_password)
    # Act
    open_tab(browser, "risk")
    # Assert: the breaker table and the CVaR confidence are risk's, as announced
    wait(browser).until(conditions.presence_of_element_located((By.ID, "breakers-table")))
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#breakers-table tbody tr")]
    daily = next(row for row in rows if row.startswith("daily_loss"))
    assert "4.5" in daily
    assert "HALTED" in daily
    assert "next session" in daily
    assert any(row.startswith("drawdown") and "REDUCING" in row for row in rows)
    assert "CVAR 99%" in browser.find_element(By.ID, "risk-kpis").text.upper()  # CSS caps
