"""Ed25519 approval signatures: risk signs, execution verifies with the public key only.

The signature covers a canonical encoding of *every* field of the approval but the signature
itself, taken generically from the model, so a field added to ``OrderApproved`` is signed
without anyone having to remember it. The encoding is versioned (``APPROVAL_ENCODING``): a
change of encoding is a new version, never a silent reinterpretation of old signatures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel

from tai_events.orders import OrderApproved

APPROVAL_ENCODING = 2
"""Version of the canonical approval encoding (1 listed a hand-picked subset of fields)."""
SIGNATURE_DOMAIN = b"tai-approval-v2"
"""Domain separation: a signature over anything else can never pass as an approval."""
UNSIGNED_FIELDS = frozenset({"signature"})
"""The only field of an approval the signature does not cover (it cannot cover itself)."""
DEFAULT_MAX_APPROVAL_LIFETIME = timedelta(minutes=15)
"""Longest validity (``expires_at - issued_at``) a verifier accepts unless told otherwise."""
SIGNATURE_BYTES = 64
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class NonCanonicalValueError(ValueError):
    """A value has no canonical encoding (a NaN, a naive timestamp, an unknown type)."""


def _canonical_scalar(value: Any) -> Any:
    """Return a scalar as JSON data with one spelling, or raise NonCanonicalValueError."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, float) and not math.isfinite(value):
        raise NonCanonicalValueError(f"non-finite number {value!r} cannot be signed")
    if value is None or isinstance(value, bool | str | int | float):
        return value  # json writes floats with repr(): the shortest text that reads back
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise NonCanonicalValueError("a naive timestamp cannot be signed")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    raise NonCanonicalValueError(f"{type(value).__name__} has no canonical encoding")


def _canonical(value: Any) -> Any:
    """Return ``value`` as plain JSON data with exactly one spelling per value."""
    if isinstance(value, BaseModel):
        return {name: _canonical(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, frozenset | set):
        return sorted((_canonical(item) for item in value), key=json.dumps)
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return _canonical_scalar(value)


def canonical_approval_bytes(approval: OrderApproved) -> bytes:
    """Return the exact bytes an approval signature covers: every field but the signature.

    A versioned, sorted-key compact JSON document naming the message type and its schema
    version, prefixed by the signature domain. Raises NonCanonicalValueError for a value that
    cannot be encoded unambiguously.
    """
    fields = {
        name: _canonical(getattr(approval, name))
        for name in type(approval).model_fields
        if name not in UNSIGNED_FIELDS
    }
    document = {
        "encoding": APPROVAL_ENCODING,
        "type": approval.message_type(),
        "schema_version": approval.schema_version,
        "fields": fields,
    }
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return SIGNATURE_DOMAIN + b"\x00" + text.encode("ascii")


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """Return a short stable id of a public key (first 16 hex of SHA-256 of its raw bytes)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def b64encode_unpadded(data: bytes) -> str:
    """Return URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode_strict(text: str, *, length: int | None = None) -> bytes:
    """Decode unpadded URL-safe base64, refusing every text but the one canonical spelling.

    Lenient decoders drop unknown characters and ignore the unused low bits of the last
    character, so several texts decode to the same bytes; here only the text that
    ``b64encode_unpadded`` would produce is accepted. Raises ValueError otherwise.
    """
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded URL-safe base64")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64encode_unpadded(data) != text:
        raise ValueError("non-canonical base64 (unused bits set)")
    if length is not None and len(data) != length:
        raise ValueError(f"expected {length} bytes, got {len(data)}")
    return data


class ApprovalSigner:
    """Signs approvals with risk's private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.key_id = key_id_of(private_key.public_key())

    @classmethod
    def from_pem(cls, pem: str | bytes) -> ApprovalSigner:
        """Load an unencrypted PKCS#8 PEM Ed25519 private key."""
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the approval private key must be an Ed25519 key")
        return cls(key)

    def sign(self, unsigned: OrderApproved) -> OrderApproved:
        """Return the approval with key_id set and a signature over its canonical bytes."""
        with_key = unsigned.model_copy(update={"key_id": self.key_id})
        signature = self._private_key.sign(canonical_approval_bytes(with_key))
        signed = {**with_key.model_dump(), "signature": b64encode_unpadded(signature)}
        return type(with_key).model_validate(signed)


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """Outcome of verifying one approval."""

    valid: bool
    reason: str
    code: str = "approval_signature_invalid"
    """Why, as a stable code for alerts and the audit log (``valid`` when it holds)."""


class ApprovalVerifier:
    """Verifies approvals with the public key(s) execution trusts."""

    def __init__(
        self,
        public_keys: list[Ed25519PublicKey],
        *,
        max_lifetime: timedelta = DEFAULT_MAX_APPROVAL_LIFETIME,
    ) -> None:
        if not public_keys:
            raise ValueError("at least one approval public key is required")
        if max_lifetime <= timedelta(0):
            raise ValueError("max_lifetime must be positive")
        self._keys = {key_id_of(key): key for key in public_keys}
        self.max_lifetime = max_lifetime
        """Longest ``expires_at - issued_at`` accepted: a stolen approval cannot live for years."""

    @classmethod
    def from_pem(
        cls,
        *pems: str | bytes,
        max_lifetime: timedelta = DEFAULT_MAX_APPROVAL_LIFETIME,
    ) -> ApprovalVerifier:
        """Load one or more PEM public keys (several during a key rotation)."""
        keys = []
        for pem in pems:
            data = pem.encode("ascii") if isinstance(pem, str) else pem
            key = serialization.load_pem_public_key(data)
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("approval public keys must be Ed25519 keys")
            keys.append(key)
        return cls(keys, max_lifetime=max_lifetime)

    def verify(self, approval: OrderApproved) -> VerificationResult:
        """Check the signature (strictly decoded) and the lifetime; say why when one fails."""
        key = self._keys.get(approval.key_id)
        if key is None:
            return VerificationResult(False, f"unknown signing key {approval.key_id}")
        try:
            signature = b64decode_strict(approval.signature, length=SIGNATURE_BYTES)
        except ValueError as error:
            return VerificationResult(False, f"malformed signature: {error}")
        try:
            key.verify(signature, canonical_approval_bytes(approval))
        except (InvalidSignature, ValueError):
            return VerificationResult(False, "signature does not match the approval's fields")
        lifetime = approval.expires_at - approval.issued_at
        if lifetime > self.max_lifetime:
            return VerificationResult(
                False,
                f"approval valid for {lifetime}, longer than the {self.max_lifetime} allowed",
                "approval_lifetime_exceeded",
            )
        return VerificationResult(True, "valid", "valid")


UNSIGNED_KEY_ID = "0" * 16
UNSIGNED_SIGNATURE = "A" * 86
"""Placeholders that let an approval be built before signing; they never verify."""


def generate_private_key_pem() -> bytes:
    """Return a new Ed25519 private key as unencrypted PKCS#8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(private_pem: bytes) -> bytes:
    """Return the SubjectPublicKeyInfo PEM of a private key PEM."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
