"""The password policy: length, variety, no runs or repetitions, not common, not the name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_gateway.passwords import WeakPasswordError, check_password, common_passwords
from tai_gateway.users import generate_password


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short-pass", "at least 12"),
        ("aaaaaaaaaaaa", "different characters"),
        ("abcdefghijkl", "sequence"),
        ("lkjhgfdsapoi", "sequence"),
        ("0987654321098", "sequence"),
        ("ab12ab12ab12", "different characters"),
        ("Password1234", "too common"),
        ("P@ssw0rd2024!", "too common"),
        ("!!Welcome2025!!", "too common"),
        ("trustno1trustno1", "repetition"),
        ("alice-is-the-best-99", "username"),
    ],
)
def test_weak_passwords_are_refused_naming_the_rule(password: str, rule: str) -> None:
    with pytest.raises(WeakPasswordError, match=rule):
        check_password(password, username="alice")


@pytest.mark.parametrize(
    "password", ["correct-horse-battery-staple-7", "kT9#mQ2$vL8!", "Tr0ub4dor&3xyz"]
)
def test_strong_passwords_pass(password: str) -> None:
    assert check_password(password, username="alice") == password


def test_generated_passwords_always_pass() -> None:
    for _ in range(200):
        password = generate_password()
        assert check_password(password, username="admin") == password


@given(st.text(alphabet="abcd", min_size=12, max_size=40))
def test_few_distinct_characters_never_pass(password: str) -> None:
    with pytest.raises(WeakPasswordError):
        check_password(password)


def test_the_bundled_list_is_loaded_lower_case() -> None:
    common = common_passwords()
    assert {"password", "qwerty", "letmein"} <= common
    assert all(entry == entry.lower() for entry in common)
