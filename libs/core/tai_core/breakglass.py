"""Break-glass commands: an operator's Ed25519 key signs a halt that needs no console login.

The kill switch must work when nobody can sign in (accounts throttled, the identity store
broken, the admin away): ``trading-ai control halt`` signs a short-lived request with an
operator key held offline; the gateway checks it against the operator public keys it was
given and publishes the halt. Only halting is offered this way: it can never add risk.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tai_core.signing import (
    SIGNATURE_BYTES,
    b64decode_strict,
    b64encode_unpadded,
    key_id_of,
)

BREAK_GLASS_DOMAIN = b"tai-break-glass-v1"
"""Domain separation: no approval or token signature can pass as a break-glass request."""
BREAK_GLASS_ACTIONS = frozenset({"halt_trading"})
REQUEST_ID_BYTES = 16


@dataclass(frozen=True, slots=True)
class BreakGlassRequest:
    """A signed operator command (the JSON body of the break-glass endpoint)."""

    action: str
    reason: str
    request_id: str
    issued_at: datetime
    key_id: str
    signature: str

    def as_json(self) -> dict[str, str]:
        """Return the request as the endpoint's JSON body."""
        return {
            "action": self.action,
            "reason": self.reason,
            "request_id": self.request_id,
            "issued_at": self.issued_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "key_id": self.key_id,
            "signature": self.signature,
        }


def canonical_break_glass_bytes(
    action: str, reason: str, request_id: str, issued_at: datetime, key_id: str
) -> bytes:
    """Return the bytes a break-glass signature covers (every field but the signature)."""
    document = {
        "action": action,
        "issued_at": issued_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "key_id": key_id,
        "reason": reason,
        "request_id": request_id,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return BREAK_GLASS_DOMAIN + b"\x00" + text.encode("ascii")


class OperatorSigner:
    """Signs break-glass requests with an operator's private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.key_id = key_id_of(private_key.public_key())

    @classmethod
    def from_pem(cls, pem: str | bytes) -> OperatorSigner:
        """Load an unencrypted PKCS#8 PEM Ed25519 private key."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the operator key must be an Ed25519 key")
        return cls(key)

    def sign(self, action: str, reason: str, now: datetime) -> BreakGlassRequest:
        """Return a signed request for ``action``, issued ``now`` with a fresh request id."""
        if action not in BREAK_GLASS_ACTIONS:
            raise ValueError(f"{action!r} is not a break-glass action")
        request_id = secrets.token_hex(REQUEST_ID_BYTES)
        signed = canonical_break_glass_bytes(action, reason, request_id, now, self.key_id)
        signature = b64encode_unpadded(self._private_key.sign(signed))
        return BreakGlassRequest(action, reason, request_id, now, self.key_id, signature)


@dataclass(frozen=True, slots=True)
class BreakGlassCheck:
    """Whether a break-glass request holds, and why not."""

    valid: bool
    reason: str


class OperatorVerifier:
    """Checks break-glass requests: known key, valid signature, fresh, used once."""

    def __init__(self, public_keys: list[Ed25519PublicKey], *, max_age: timedelta) -> None:
        if not public_keys:
            raise ValueError("at least one operator public key is required")
        self._keys = {key_id_of(key): key for key in public_keys}
        self._max_age = max_age
        self._seen: dict[str, datetime] = {}

    @classmethod
    def from_pem(cls, text: str, *, max_age: timedelta) -> OperatorVerifier:
        """Load every PEM public key in ``text`` (several operators, or a rotation)."""
        marker = "-----END PUBLIC KEY-----"
        keys = []
        for block in text.split(marker):
            if "-----BEGIN PUBLIC KEY-----" not in block:
                continue
            key = serialization.load_pem_public_key((block.strip() + "\n" + marker).encode())
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("operator public keys must be Ed25519 keys")
            keys.append(key)
        return cls(keys, max_age=max_age)

    def check(self, request: BreakGlassRequest, now: datetime) -> BreakGlassCheck:
        """Return whether ``request`` may be acted on now (a valid one is then spent)."""
        if request.action not in BREAK_GLASS_ACTIONS:
            return BreakGlassCheck(False, f"{request.action!r} is not a break-glass action")
        key = self._keys.get(request.key_id)
        if key is None:
            return BreakGlassCheck(False, f"unknown operator key {request.key_id}")
        try:
            signature = b64decode_strict(request.signature, length=SIGNATURE_BYTES)
            key.verify(
                signature,
                canonical_break_glass_bytes(
                    request.action,
                    request.reason,
                    request.request_id,
                    request.issued_at,
                    request.key_id,
                ),
            )
        except (InvalidSignature, ValueError):
            return BreakGlassCheck(False, "signature does not match the request")
        age = now - request.issued_at
        if age > self._max_age or age < -self._max_age:
            return BreakGlassCheck(False, f"request issued {age} ago; at most {self._max_age}")
        self._seen = {rid: at for rid, at in self._seen.items() if now - at <= self._max_age * 2}
        if request.request_id in self._seen:
            return BreakGlassCheck(False, "request already used")
        self._seen[request.request_id] = now
        return BreakGlassCheck(True, "valid")
