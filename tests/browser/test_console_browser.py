"""The console in headless Chromium: login, live fills and equity, the kill switch, roles."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from conftest import PASSWORDS, RunningGateway, fill
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as conditions
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.browser

WAIT_SECONDS = 15


def wait(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1)


def sign_in(driver: webdriver.Chrome, gateway: RunningGateway, username: str) -> None:
    driver.get(f"{gateway.console_url}/")
    wait(driver).until(conditions.presence_of_element_located((By.ID, "username")))
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[username])
    driver.find_element(By.ID, "login-submit").click()
    try:
        wait(driver).until(conditions.presence_of_element_located((By.ID, "whoami")))
    except TimeoutException:
        logs = driver.get_log("browser")  # type: ignore[no-untyped-call]
        pytest.fail(f"console did not load after sign-in: {driver.page_source[:2000]} {logs}")


def fill_table_text(driver: webdriver.Chrome) -> str:
    wait(driver).until(conditions.presence_of_element_located((By.ID, "fills-table")))
    return str(driver.find_element(By.ID, "fills-table").text)


def test_trader_sees_fills_and_the_equity_curve(
    browser: webdriver.Chrome, running_gateway: RunningGateway, screenshots: Path
) -> None:
    # Arrange
    browser.get(f"{running_gateway.console_url}/login")
    wait(browser).until(conditions.presence_of_element_located((By.ID, "login-submit")))
    browser.save_screenshot(str(screenshots / "console-login.png"))
    # Act
    sign_in(browser, running_gateway, "tom")
    # Assert
    assert "tom (trader)" in browser.find_element(By.ID, "whoami").text
    table = fill_table_text(browser)
    for row in ("EURUSD BUY 1000", "EURUSD SELL 2000", "EURUSD BUY 3000"):
        assert row in table
    wait(browser).until(
        conditions.presence_of_element_located(
            (By.CSS_SELECTOR, "#equity-graph .scatterlayer .trace")
        )
    )
    assert browser.find_elements(By.ID, "halt-button") == []
    browser.save_screenshot(str(screenshots / "console-live.png"))
    browser.find_element(By.ID, "tab-system").click()
    wait(browser).until(conditions.presence_of_element_located((By.ID, "readiness-table")))
    wait(browser).until(
        conditions.text_to_be_present_in_element((By.ID, "readiness-table"), "ready")
    )
    assert "NOT READY" not in browser.find_element(By.ID, "readiness-table").text
    assert "visible to admins" in browser.find_element(By.ID, "audit").text
    browser.save_screenshot(str(screenshots / "console-system.png"))


def test_fill_published_on_the_bus_appears_in_the_table(
    browser: webdriver.Chrome, running_gateway: RunningGateway
) -> None:
    # Arrange
    sign_in(browser, running_gateway, "tom")
    assert "GBPUSD BUY 77000" not in fill_table_text(browser)
    # Act
    running_gateway.run(running_gateway.bus.publish(fill(77, datetime.now(UTC), "GBPUSD")))
    # Assert
    wait(browser).until(
        conditions.text_to_be_present_in_element((By.ID, "fills-table"), "GBPUSD BUY 77000")
    )


def test_admin_kill_switch_halts_trading(
    browser: webdriver.Chrome, running_gateway: RunningGateway, screenshots: Path
) -> None:
    # Arrange
    sign_in(browser, running_gateway, "alice")
    browser.find_element(By.ID, "tab-risk").click()
    wait(browser).until(conditions.element_to_be_clickable((By.ID, "halt-button")))
    browser.find_element(By.ID, "control-reason").send_keys("browser test kill switch")
    # Act
    browser.find_element(By.ID, "halt-button").click()
    # Assert
    wait(browser).until(
        conditions.text_to_be_present_in_element((By.ID, "halt-feedback"), "HaltTrading sent")
    )
    wait(browser).until(
        conditions.text_to_be_present_in_element((By.ID, "trading-state"), "HALTED")
    )
    browser.save_screenshot(str(screenshots / "console-halted.png"))
    browser.find_element(By.ID, "tab-system").click()
    wait(browser).until(conditions.text_to_be_present_in_element((By.ID, "audit"), "halt_trading"))
    browser.save_screenshot(str(screenshots / "console-system-admin.png"))


def test_viewer_has_no_kill_switch_and_a_forged_halt_is_refused(
    browser: webdriver.Chrome, running_gateway: RunningGateway
) -> None:
    # Arrange
    sign_in(browser, running_gateway, "victor")
    fill_table_text(browser)
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
        f"{running_gateway.console_url}/_dash-update-component",
        json=forged,
        cookies=cookies,
        headers={"X-CSRFToken": cookies["_csrf_token"]},
    )
    # Assert
    assert response.status_code == 403

    async def denials() -> list[str]:
        async with running_gateway.store.transaction() as unit:
            entries = await unit.audit.list(action="halt_trading")
        return [entry.actor for entry in entries if entry.outcome == "denied"]

    assert running_gateway.run(denials()) == ["victor"]
