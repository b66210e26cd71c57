"""The login flow: verification, throttling per (account, source) and per source, audit."""

from __future__ import annotations

from datetime import timedelta

from gateway_support import ADMIN_PASSWORD, T0

from tai_core.clock import FakeClock
from tai_gateway.auth import PasswordHashing, Role
from tai_gateway.ledger import GatewayLedger
from tai_gateway.login import LoginOutcome, LoginService
from tai_gateway.throttle import BackoffPolicy, LoginThrottle
from tai_store import Store

PER_ACCOUNT = BackoffPolicy(
    free_failures=3,
    base_delay=timedelta(seconds=2),
    max_delay=timedelta(minutes=15),
    forget_after=timedelta(hours=1),
)
PER_SOURCE = BackoffPolicy(
    free_failures=6,
    base_delay=timedelta(seconds=2),
    max_delay=timedelta(minutes=15),
    forget_after=timedelta(hours=1),
)
ATTACKER = "203.0.113.66"
DESK = "10.0.0.9"


def service(store: Store, clock: FakeClock, hashing: PasswordHashing) -> LoginService:
    throttle = LoginThrottle(store, per_account=PER_ACCOUNT, per_source=PER_SOURCE)
    return LoginService(GatewayLedger(store, clock, "paper"), hashing, throttle, clock)


async def attempt(
    login: LoginService, password: str, username: str = "alice", source: str = DESK
) -> LoginOutcome:
    result = await login.login(username, password, channel="api", source=source)
    return result.outcome


async def test_right_password_logs_in_with_the_stored_role(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    result = await service(store, clock, hashing).login(
        "alice", ADMIN_PASSWORD, channel="console", source=DESK
    )
    assert result.outcome is LoginOutcome.SUCCEEDED
    assert result.principal is not None
    assert result.principal.role is Role.ADMIN


async def test_failures_from_one_source_throttle_that_source_for_the_account(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    login = service(store, clock, hashing)
    outcomes = [await attempt(login, "wrong-password-1", source=ATTACKER) for _ in range(4)]
    assert outcomes == [LoginOutcome.INVALID] * 3 + [LoginOutcome.THROTTLED]
    assert await attempt(login, ADMIN_PASSWORD, source=ATTACKER) is LoginOutcome.THROTTLED


async def test_an_attacker_cannot_lock_the_account_out_for_its_owner(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    # Arrange: a stranger fails for "alice" far past every threshold
    login = service(store, clock, hashing)
    for _ in range(30):
        await attempt(login, "wrong-password-1", source=ATTACKER)
    # Act: alice signs in from her desk
    outcome = await attempt(login, ADMIN_PASSWORD, source=DESK)
    # Assert
    assert outcome is LoginOutcome.SUCCEEDED


async def test_the_wait_doubles_with_each_failure_past_the_free_ones(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    login = service(store, clock, hashing)
    for _ in range(3):
        await attempt(login, "wrong-password-1", source=ATTACKER)
    first = await login.login("alice", "x" * 12, channel="api", source=ATTACKER)
    clock.advance(timedelta(seconds=2))
    assert await attempt(login, "wrong-password-1", source=ATTACKER) is LoginOutcome.INVALID
    second = await login.login("alice", "x" * 12, channel="api", source=ATTACKER)
    clock.advance(timedelta(seconds=4))
    assert await attempt(login, ADMIN_PASSWORD, source=ATTACKER) is LoginOutcome.SUCCEEDED
    assert (first.retry_after_seconds, second.retry_after_seconds) == (2, 4)


async def test_one_source_trying_many_names_is_throttled_for_every_name(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    login = service(store, clock, hashing)
    for number in range(6):
        await attempt(login, "wrong-password-1", username=f"name{number}", source=ATTACKER)
    assert await attempt(login, ADMIN_PASSWORD, source=ATTACKER) is LoginOutcome.THROTTLED
    assert await attempt(login, ADMIN_PASSWORD, source=DESK) is LoginOutcome.SUCCEEDED


async def test_failures_are_forgotten_after_an_idle_period(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    login = service(store, clock, hashing)
    for _ in range(3):
        await attempt(login, "wrong-password-1", source=ATTACKER)
    clock.advance(timedelta(hours=1))
    assert await attempt(login, "wrong-password-1", source=ATTACKER) is LoginOutcome.INVALID


async def test_success_resets_the_count_of_that_source(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    login = service(store, clock, hashing)
    await attempt(login, "wrong-password-1")
    await attempt(login, "wrong-password-1")
    assert await attempt(login, ADMIN_PASSWORD) is LoginOutcome.SUCCEEDED
    outcomes = [await attempt(login, "wrong-password-1") for _ in range(3)]
    assert outcomes == [LoginOutcome.INVALID] * 3


async def test_unknown_and_known_names_get_the_same_answers(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    login = service(store, clock, hashing)
    wrong = "wrong-password-1"
    known = [await attempt(login, wrong, "alice", "198.51.100.1") for _ in range(5)]
    unknown = [await attempt(login, wrong, "mallory", "198.51.100.2") for _ in range(5)]
    assert known == unknown


async def test_an_unknown_name_is_checked_against_the_decoy_hash(
    store: Store, clock: FakeClock, hashing: PasswordHashing, users: None
) -> None:
    # Arrange: count how often a password hash is verified
    checked: list[str | None] = []
    original = hashing.verify

    def counting(password_hash: str | None, password: str) -> bool:
        checked.append(password_hash)
        return original(password_hash, password)

    hashing.verify = counting  # type: ignore[method-assign]
    # Act
    await attempt(service(store, clock, hashing), "whatever-password", username="mallory")
    # Assert: the work is done, on the decoy
    assert checked == [None]


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
    assert all(entry.details["source"] == DESK for entry in entries)
    assert entries[0].occurred_at == T0
