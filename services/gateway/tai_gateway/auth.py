"""Authentication and authorisation: roles, password hashing, bearer tokens.

Everything here is pure (no I/O); the login flow that reads and writes users lives in
``tai_gateway.login``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tai_core.clock import Clock

USERNAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{2,63}$")
TOKEN_DOMAIN = b"tai-gateway-token-v1"
"""Domain separation: a token signature can never be mistaken for any other HMAC of the key."""


class Role(StrEnum):
    """What a user may do: viewers read, traders also trade, admins also control."""

    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Return the position of the role in viewer < trader < admin."""
        return _RANKS[self]

    def allows(self, required: Role) -> bool:
        """Return True when this role includes everything ``required`` may do."""
        return self.rank >= required.rank


_RANKS = {Role.VIEWER: 0, Role.TRADER: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user."""

    username: str
    role: Role


def validate_username(username: str) -> str:
    """Return the username when it is well formed, else raise ValueError saying why."""
    if not USERNAME_PATTERN.fullmatch(username):
        raise ValueError(
            "username must be 3-64 characters: a lower-case letter, then lower-case letters, "
            "digits, '_', '.' or '-'"
        )
    return username


class PasswordHashing:
    """Argon2id password hashes; unknown users are checked against a decoy (uniform timing)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._decoy_hash = self._hasher.hash("decoy password for unknown users")

    def hash(self, password: str) -> str:
        """Return the Argon2id hash of a password."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Return True when the password matches; a None hash burns the same time and fails."""
        try:
            return self._hasher.verify(password_hash or self._decoy_hash, password) and (
                password_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


class InvalidTokenError(Exception):
    """A bearer token is malformed, forged, or expired; the message says which."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A bearer token and when it expires."""

    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says: whose session it is, and which session."""

    username: str
    session_id: str
    expires_at: datetime


class TokenSigner:
    """Issue and verify HMAC-SHA256 signed bearer tokens naming a user's server-side session.

    The token carries no role: the role is read from the user's record on every request, and
    the session must still exist (see ``tai_gateway.sessions``), so revoking it ends the token.
    """

    def __init__(self, secret: bytes, clock: Clock, lifetime: timedelta) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 bytes")
        self._key = hashlib.sha256(TOKEN_DOMAIN + b"\x00" + secret).digest()
        self._clock = clock
        self.lifetime = lifetime

    def _signature(self, payload: str) -> str:
        return _b64encode(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(
        self, username: str, session_id: str, expires_at: datetime | None = None
    ) -> IssuedToken:
        """Return a token for the user's session, valid until ``expires_at`` (or a lifetime)."""
        if expires_at is None:
            expires_at = self._clock.now() + self.lifetime
        claims = {"sub": username, "sid": session_id, "exp": int(expires_at.timestamp())}
        payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        return IssuedToken(f"{payload}.{self._signature(payload)}", expires_at)

    def verify(self, token: str) -> TokenClaims:
        """Return the token's claims or raise InvalidTokenError (the session is checked apart)."""
        payload, separator, signature = token.partition(".")
        if not separator or not payload or not signature:
            raise InvalidTokenError("malformed token")
        if not hmac.compare_digest(signature, self._signature(payload)):
            raise InvalidTokenError("bad token signature")
        try:
            claims = json.loads(_b64decode(payload))
            username = validate_username(str(claims["sub"]))
            session_id = str(claims["sid"])
            expires = int(claims["exp"])
        except (ValueError, KeyError, TypeError) as error:
            raise InvalidTokenError("malformed token claims") from error
        if self._clock.now().timestamp() >= expires:
            raise InvalidTokenError("token expired")
        return TokenClaims(username, session_id, datetime.fromtimestamp(expires, UTC))
