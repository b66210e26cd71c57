"""Roles, password hashing, validation and signed bearer tokens."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from gateway_support import SECRET, T0, fast_hasher

from tai_core.clock import FakeClock
from tai_gateway.auth import (
    InvalidTokenError,
    PasswordHashing,
    Role,
    TokenClaims,
    TokenSigner,
    validate_username,
)
from tai_gateway.passwords import check_password
from tai_gateway.users import generate_password


@pytest.mark.parametrize(
    ("role", "required", "allowed"),
    [
        (Role.VIEWER, Role.VIEWER, True),
        (Role.VIEWER, Role.TRADER, False),
        (Role.VIEWER, Role.ADMIN, False),
        (Role.TRADER, Role.VIEWER, True),
        (Role.TRADER, Role.ADMIN, False),
        (Role.ADMIN, Role.TRADER, True),
        (Role.ADMIN, Role.ADMIN, True),
    ],
)
def test_roles_are_ordered_viewer_trader_admin(role: Role, required: Role, allowed: bool) -> None:
    assert role.allows(required) is allowed


def test_password_hash_verifies_only_the_right_password() -> None:
    hashing = PasswordHashing(fast_hasher())
    stored = hashing.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse battery" not in stored
    assert hashing.verify(stored, "correct horse battery")
    assert not hashing.verify(stored, "wrong horse battery")


def test_password_check_for_unknown_user_fails() -> None:
    hashing = PasswordHashing(fast_hasher())
    assert not hashing.verify(None, "decoy password for unknown users")


def test_corrupt_stored_hash_fails_instead_of_raising() -> None:
    hashing = PasswordHashing(fast_hasher())
    assert not hashing.verify("not-a-hash", "anything")


@pytest.mark.parametrize("name", ["al", "Alice", "1alice", "al ice", "a" * 65, "alice;drop"])
def test_malformed_usernames_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="username"):
        validate_username(name)


def test_short_password_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 12"):
        check_password("short-pass")


def test_generated_passwords_are_long_random_and_valid() -> None:
    passwords = {generate_password() for _ in range(20)}
    assert len(passwords) == 20
    for password in passwords:
        assert check_password(password) == password
        assert len(password) >= 24


def test_token_round_trips_the_session_and_carries_no_role() -> None:
    signer = TokenSigner(SECRET.encode(), FakeClock(T0), timedelta(minutes=30))
    issued = signer.issue("alice", "session-1")
    assert issued.expires_at == T0 + timedelta(minutes=30)
    assert signer.verify(issued.token) == TokenClaims("alice", "session-1", issued.expires_at)
    assert "role" not in _claims(issued.token)


def test_token_expires_after_its_lifetime() -> None:
    clock = FakeClock(T0)
    signer = TokenSigner(SECRET.encode(), clock, timedelta(minutes=30))
    token = signer.issue("alice", "session-1").token
    clock.advance(timedelta(minutes=29, seconds=59))
    assert signer.verify(token).username == "alice"
    clock.advance(timedelta(seconds=1))
    with pytest.raises(InvalidTokenError, match="expired"):
        signer.verify(token)


def test_token_naming_another_session_is_refused() -> None:
    signer = TokenSigner(SECRET.encode(), FakeClock(T0), timedelta(minutes=30))
    token = signer.issue("victor", "session-1").token
    forged_payload = (
        TokenSigner(b"another-secret-another-secret-0123", FakeClock(T0), timedelta(minutes=30))
        .issue("alice", "session-2")
        .token.split(".")[0]
    )
    with pytest.raises(InvalidTokenError, match="signature"):
        signer.verify(f"{forged_payload}.{token.split('.')[1]}")


def test_token_signed_with_another_secret_is_refused() -> None:
    other = TokenSigner(b"another-secret-another-secret-0123", FakeClock(T0), timedelta(hours=1))
    signer = TokenSigner(SECRET.encode(), FakeClock(T0), timedelta(hours=1))
    with pytest.raises(InvalidTokenError, match="signature"):
        signer.verify(other.issue("alice", "session-1").token)


@pytest.mark.parametrize("token", ["", "abc", "abc.", ".abc", "a.b.c"])
def test_malformed_tokens_are_refused(token: str) -> None:
    signer = TokenSigner(SECRET.encode(), FakeClock(T0), timedelta(hours=1))
    with pytest.raises(InvalidTokenError):
        signer.verify(token)


def test_short_token_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenSigner(b"short", FakeClock(T0), timedelta(hours=1))


def _claims(token: str) -> dict[str, object]:
    payload = token.partition(".")[0]
    loaded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return loaded
