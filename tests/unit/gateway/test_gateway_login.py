"""The login flow: verification, lock-out with a fake clock, audit of every attempt."""

from __future__ import annotations

from datetime import timedelta

from gateway_support import ADMIN_PASSWORD, T0

from tai_core.clock import FakeClock
from tai_gateway.auth import LockoutPolicy, PasswordHashing, Role
from tai_gateway.ledger import GatewayLedger
from tai_gateway.login import LoginOutcome, LoginService
from tai_store import Store

POLICY = LockoutPolicy(max_failures=3, lockout=timedelta(minutes=15))


def service(store: Store, clock: FakeClock, hashing: PasswordHashing) -> LoginService:
    return LoginService(GatewayLedger(store, clock, "paper"), hashing, POLICY, clock)


async def attempt(login: LoginService, password: str, username: str = "alice") -> LoginOutcome:
    result = await login.login(username, password, channel="api", source="10.0.0.9")
    return result.outcome


async def test_right_password_logs_in_with_the_stored_role(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    result = await service(store, clock, hashing).login(
        "alice", ADMIN_PASSWORD, channel="console", source="10.0.0.9"
    )
    assert result.outcome is LoginOutcome.SUCCEEDED
    assert result.principal is not None
    assert result.principal.role is Role.ADMIN


async def test_account_locks_after_max_failures_even_for_the_right_password(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    login = service(store, clock, hashing)
    outcomes = [await attempt(login, "wrong-password-1") for _ in range(3)]
    assert outcomes == [LoginOutcome.INVALID, LoginOutcome.INVALID, LoginOutcome.LOCKED]
    assert await attempt(login, ADMIN_PASSWORD) is LoginOutcome.LOCKED


async def test_lock_out_lapses_after_lockout_minutes(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    login = service(store, clock, hashing)
    for _ in range(3):
        await attempt(login, "wrong-password-1")
    clock.advance(timedelta(minutes=14, seconds=59))
    assert await attempt(login, ADMIN_PASSWORD) is LoginOutcome.LOCKED
    clock.advance(timedelta(seconds=1))
    assert await attempt(login, ADMIN_PASSWORD) is LoginOutcome.SUCCEEDED


async def test_a_lapsed_lock_out_starts_a_fresh_count(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    login = service(store, clock, hashing)
    for _ in range(3):
        await attempt(login, "wrong-password-1")
    clock.advance(timedelta(minutes=16))
    assert await attempt(login, "wrong-password-1") is LoginOutcome.INVALID


async def test_success_resets_the_failure_count(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    login = service(store, clock, hashing)
    await attempt(login, "wrong-password-1")
    await attempt(login, "wrong-password-1")
    assert await attempt(login, ADMIN_PASSWORD) is LoginOutcome.SUCCEEDED
    outcomes = [await attempt(login, "wrong-password-1") for _ in range(2)]
    assert outcomes == [LoginOutcome.INVALID, LoginOutcome.INVALID]


async def test_every_attempt_is_audited(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    login = service(store, clock, hashing)
    await attempt(login, "wrong-password-1")
    await attempt(login, ADMIN_PASSWORD)
    await attempt(login, "whatever-password", username="mallory")
    async with store.transaction() as unit:
        entries = await unit.audit.list(action="login")
    assert [(entry.actor, entry.outcome) for entry in reversed(entries)] == [
        ("alice", "invalid_credentials"),
        ("alice", "succeeded"),
        ("mallory", "invalid_credentials"),
    ]
    assert all(entry.details["source"] == "10.0.0.9" for entry in entries)
    assert entries[0].occurred_at == T0
