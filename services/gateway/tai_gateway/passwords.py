"""The password policy: long enough, not trivial, not a common or breached password.

Length alone lets ``aaaaaaaaaaaa`` or ``Password1234`` through; the policy also refuses
passwords with few distinct characters, repeated units, keyboard or alphabet runs, the
username, and anything built on a bundled list of common/breached passwords (after stripping
digits and symbols around it and undoing common letter substitutions).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

MINIMUM_PASSWORD_LENGTH = 12
MAXIMUM_PASSWORD_LENGTH = 1024
MINIMUM_DISTINCT_CHARACTERS = 5
COMMON_PASSWORDS_FILE = "common_passwords.txt"
SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz",
    "0123456789",
    "qwertyuiopasdfghjklzxcvbnm",
    "qwertzuiopasdfghjklyxcvbnm",
    "azertyuiopqsdfghjklmwxcvbn",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "zaq1xsw2cde3vfr4bgt5nhy6mju7",
)
"""Alphabet, digits and keyboard walks; a password that is one run of these (either way)."""
SUBSTITUTIONS = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
_AROUND = re.compile(r"^[\W\d_]+|[\W\d_]+$")


class WeakPasswordError(ValueError):
    """The password breaks the policy; the message says which rule, never the password."""


@cache
def common_passwords() -> frozenset[str]:
    """Return the bundled list of common and breached passwords (lower case)."""
    text = resources.files("tai_gateway").joinpath(COMMON_PASSWORDS_FILE).read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _is_repetition(text: str) -> bool:
    """Return True when ``text`` is one short unit repeated (``abcabcabcabc``)."""
    return any(
        len(text) % size == 0 and text == text[:size] * (len(text) // size)
        for size in range(1, len(text) // 2 + 1)
    )


def _is_run(text: str) -> bool:
    """Return True when ``text`` is a run (or repeated runs) of a keyboard/alphabet sequence."""
    for sequence in SEQUENCES:
        for candidate in (sequence, sequence[::-1]):
            cycle = candidate * (len(text) // len(candidate) + 2)
            if text in cycle:
                return True
    return False


def _bases(password: str) -> set[str]:
    """Return the spellings to look up: as typed, without digits/symbols around, de-leeted."""
    lowered = password.lower()
    stripped = _AROUND.sub("", lowered)
    return {
        lowered,
        stripped,
        lowered.translate(SUBSTITUTIONS),
        _AROUND.sub("", stripped.translate(SUBSTITUTIONS)),
    } - {""}


def _is_common(password: str) -> bool:
    common = common_passwords()
    for base in _bases(password):
        if base in common:
            return True
        # "passwordpassword", "letmeinletmein": a common word repeated
        for size in range(4, len(base) // 2 + 1):
            if _is_repetition(base) and base[:size] in common and len(base) % size == 0:
                return True
    return False


def check_password(password: str, *, username: str = "") -> str:
    """Return the password when the policy allows it, else raise WeakPasswordError."""
    if len(password) < MINIMUM_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password must be at least {MINIMUM_PASSWORD_LENGTH} characters")
    if len(password) > MAXIMUM_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password must be at most {MAXIMUM_PASSWORD_LENGTH} characters")
    lowered = password.lower()
    if len(set(lowered)) < MINIMUM_DISTINCT_CHARACTERS:
        raise WeakPasswordError(
            f"password must use at least {MINIMUM_DISTINCT_CHARACTERS} different characters"
        )
    if _is_repetition(lowered) or _is_run(lowered):
        raise WeakPasswordError("password is a repetition or a keyboard/alphabet sequence")
    if username and len(username) >= 3 and username.lower() in lowered:
        raise WeakPasswordError("password must not contain the username")
    if _is_common(password):
        raise WeakPasswordError("password is too common (it appears in breached-password lists)")
    return password
