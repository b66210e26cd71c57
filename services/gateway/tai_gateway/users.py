"""User administration used by ``trading-ai users add``."""

from __future__ import annotations

import secrets
from datetime import datetime

from tai_core.clock import SystemClock
from tai_gateway.auth import PasswordHashing, Role, validate_password, validate_username
from tai_gateway.ledger import GatewayLedger
from tai_store import Store

GENERATED_PASSWORD_BYTES = 18
"""18 random bytes: a 24-character URL-safe password (144 bits)."""


async def add_user(store: Store, username: str, password: str, role: str, at: datetime) -> None:
    """Create a user with an Argon2id hash of ``password``; raise ValueError on bad input."""
    validate_username(username)
    validate_password(password)
    checked_role = Role(role)
    ledger = GatewayLedger(store, SystemClock(), account="")
    if await ledger.find_user(username) is not None:
        raise ValueError(f"user {username!r} already exists")
    await ledger.add_user(username, PasswordHashing().hash(password), checked_role.value, at)


def generate_password() -> str:
    """Return a new random password suitable for a first login."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
