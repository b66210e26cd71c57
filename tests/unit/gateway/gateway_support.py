"""Helpers shared by the gateway's unit tests (and its browser tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from argon2 import PasswordHasher

from tai_events.orders import FillExecuted, Side
from tai_gateway.auth import PasswordHashing
from tai_gateway.config import GatewaySettings
from tai_store import Store

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
SECRET = "unit-test-session-secret-0123456789abcdef"
ADMIN_PASSWORD = "admin-password-123"
TRADER_PASSWORD = "trader-password-123"
VIEWER_PASSWORD = "viewer-password-123"


def fast_hasher() -> PasswordHasher:
    """Return a cheap Argon2 hasher: the tests exercise logic, not key stretching."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def make_settings(**overrides: object) -> GatewaySettings:
    """Return gateway settings for tests (a fixed secret, cookies allowed over HTTP)."""
    values: dict[str, object] = {
        "session_secret": SECRET,
        "session_cookie_secure": False,
        "api_port": 0,
        "console_port": 0,
    }
    values.update(overrides)
    return GatewaySettings.model_validate(values)


def make_fill(number: int, *, at: datetime = T0, symbol: str = "EURUSD") -> FillExecuted:
    """Return a fill numbered ``number``, ``number`` hours after ``at``."""
    return FillExecuted(
        fill_id=f"fill-{number}",
        order_id=f"order-{number}",
        strategy="sma_cross",
        symbol=symbol,
        side=Side.BUY if number % 2 else Side.SELL,
        quantity=1000.0 * number,
        price=1.1 + number / 1000,
        commission=0.5,
        filled_at=at + timedelta(hours=number),
        broker="paper",
    )


async def add_user(
    store: Store, hashing: PasswordHashing, name: str, password: str, role: str
) -> None:
    """Store a user with a cheap hash."""
    async with store.transaction() as unit:
        await unit.users.add(name, hashing.hash(password), role, T0)


async def token_for(client: httpx.AsyncClient, username: str, password: str) -> str:
    """Log in through the API and return the bearer token."""
    response = await client.post("/api/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    """Return the Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}
