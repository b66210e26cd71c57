"""Approval signatures: only risk's key signs, and any change to a field breaks them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tai_core.signing import (
    UNSIGNED_KEY_ID,
    UNSIGNED_SIGNATURE,
    ApprovalSigner,
    ApprovalVerifier,
    generate_private_key_pem,
    public_key_pem,
)
from tai_events import OrderApproved, Side
from tests.factories import T0


def _unsigned(**overrides: object) -> OrderApproved:
    fields: dict[str, object] = {
        "approval_id": "apr-1",
        "order_id": "ord-1",
        "strategy": "sma_cross",
        "symbol": "EURUSD",
        "side": Side.BUY,
        "quantity": 10_000.0,
        "requested_quantity": 10_000.0,
        "price_floor": 1.0,
        "price_ceiling": 1.2,
        "signal_time": T0,
        "issued_at": T0,
        "expires_at": T0 + timedelta(minutes=5),
        "key_id": UNSIGNED_KEY_ID,
        "signature": UNSIGNED_SIGNATURE,
    }
    fields.update(overrides)
    return OrderApproved.model_validate(fields)


def test_signed_approval_verifies(signer: ApprovalSigner, verifier: ApprovalVerifier) -> None:
    assert verifier.verify(signer.sign(_unsigned())).valid


def test_unsigned_approval_is_refused(verifier: ApprovalVerifier) -> None:
    result = verifier.verify(_unsigned())
    assert not result.valid
    assert "unknown signing key" in result.reason


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": 20_000.0},
        {"side": Side.SELL},
        {"symbol": "GBPUSD"},
        {"price_ceiling": 5.0},
        {"expires_at": T0 + timedelta(days=1)},
        {"order_id": "ord-2"},
        {"approval_id": "apr-2"},
    ],
)
def test_altered_field_breaks_the_signature(
    signer: ApprovalSigner, verifier: ApprovalVerifier, change: dict[str, object]
) -> None:
    # Arrange
    signed = signer.sign(_unsigned())
    # Act
    tampered = signed.model_copy(update=change)
    # Assert
    assert not verifier.verify(tampered).valid


def test_signature_from_another_key_is_refused(verifier: ApprovalVerifier) -> None:
    # Arrange: a forger with their own key, claiming risk's key id
    forger = ApprovalSigner.from_pem(generate_private_key_pem())
    forged = forger.sign(_unsigned())
    # Act
    claimed = forged.model_copy(
        update={"key_id": ApprovalSigner.from_pem(generate_private_key_pem()).key_id}
    )
    # Assert
    assert not verifier.verify(forged).valid
    assert not verifier.verify(claimed).valid


def test_verifier_trusts_several_keys_during_a_rotation(signer: ApprovalSigner) -> None:
    # Arrange
    new_private = generate_private_key_pem()
    new_signer = ApprovalSigner.from_pem(new_private)
    old_public = public_key_pem(generate_private_key_pem())
    verifier = ApprovalVerifier.from_pem(old_public, public_key_pem(new_private))
    # Act / Assert
    assert verifier.verify(new_signer.sign(_unsigned())).valid
    assert not verifier.verify(signer.sign(_unsigned())).valid
