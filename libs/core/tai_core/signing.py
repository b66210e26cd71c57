"""Ed25519 approval signatures: risk signs, execution verifies with the public key only."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tai_events.orders import OrderApproved

SIGNATURE_DOMAIN = b"tai-approval-v1"
"""Domain separation: a signature over anything else can never pass as an approval."""


def _float_text(value: float | None) -> str:
    return "-" if value is None else repr(float(value))


def _time_text(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def canonical_approval_bytes(approval: OrderApproved) -> bytes:
    """Return the exact bytes an approval signature covers (every field execution acts on)."""
    fields = [
        approval.approval_id,
        approval.order_id,
        approval.strategy,
        approval.symbol,
        approval.side.value,
        _float_text(approval.quantity),
        approval.order_type.value,
        _float_text(approval.limit_price),
        _float_text(approval.stop_price),
        _float_text(approval.stop_loss),
        _float_text(approval.take_profit),
        _float_text(approval.price_floor),
        _float_text(approval.price_ceiling),
        _time_text(approval.signal_time),
        _time_text(approval.issued_at),
        _time_text(approval.expires_at),
        approval.key_id,
    ]
    return SIGNATURE_DOMAIN + b"\x00" + "\x1f".join(fields).encode("utf-8")


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """Return a short stable id of a public key (first 16 hex of SHA-256 of its raw bytes)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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
        return OrderApproved.model_validate({**with_key.model_dump(), "signature": _b64(signature)})


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """Outcome of verifying one approval."""

    valid: bool
    reason: str


class ApprovalVerifier:
    """Verifies approvals with the public key(s) execution trusts."""

    def __init__(self, public_keys: list[Ed25519PublicKey]) -> None:
        if not public_keys:
            raise ValueError("at least one approval public key is required")
        self._keys = {key_id_of(key): key for key in public_keys}

    @classmethod
    def from_pem(cls, *pems: str | bytes) -> ApprovalVerifier:
        """Load one or more PEM public keys (several during a key rotation)."""
        keys = []
        for pem in pems:
            data = pem.encode("ascii") if isinstance(pem, str) else pem
            key = serialization.load_pem_public_key(data)
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("approval public keys must be Ed25519 keys")
            keys.append(key)
        return cls(keys)

    def verify(self, approval: OrderApproved) -> VerificationResult:
        """Check the signature; say why when it does not hold."""
        key = self._keys.get(approval.key_id)
        if key is None:
            return VerificationResult(False, f"unknown signing key {approval.key_id}")
        try:
            key.verify(_unb64(approval.signature), canonical_approval_bytes(approval))
        except (InvalidSignature, ValueError):
            return VerificationResult(False, "signature does not match the approval's fields")
        return VerificationResult(True, "valid")


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
