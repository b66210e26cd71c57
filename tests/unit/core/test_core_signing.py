"""Approval signatures: only risk's key signs, and any change to a field breaks them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_core.signing import (
    APPROVAL_ENCODING,
    DEFAULT_MAX_APPROVAL_LIFETIME,
    SIGNATURE_DOMAIN,
    UNSIGNED_KEY_ID,
    UNSIGNED_SIGNATURE,
    ApprovalSigner,
    ApprovalVerifier,
    b64decode_strict,
    b64encode_unpadded,
    canonical_approval_bytes,
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


def _changed_value(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, float):
        return value * 1.5 + 0.25
    if isinstance(value, str):
        return {"BUY": "SELL", "MARKET": "LIMIT", UNSIGNED_KEY_ID: "1" * 16}.get(value, value + "x")
    return value + timedelta(seconds=1)  # type: ignore[operator]


@pytest.mark.parametrize(
    "field",
    sorted(
        name
        for name in OrderApproved.model_fields
        if name not in {"signature", "key_id", "order_type", "stop_price", "limit_price"}
        and name not in {"stop_loss", "take_profit"}
    ),
)
def test_every_field_but_the_signature_is_signed(
    signer: ApprovalSigner, verifier: ApprovalVerifier, field: str
) -> None:
    # Arrange
    signed = signer.sign(_unsigned())
    # Act: change one field, bypassing validation (an attacker edits the JSON)
    tampered = signed.model_copy(update={field: _changed_value(getattr(signed, field))})
    # Assert
    assert canonical_approval_bytes(tampered) != canonical_approval_bytes(signed)
    assert not verifier.verify(tampered).valid


@pytest.mark.parametrize("field", ["stop_loss", "take_profit", "limit_price", "stop_price"])
def test_optional_prices_are_signed_when_added_or_removed(
    signer: ApprovalSigner, verifier: ApprovalVerifier, field: str
) -> None:
    signed = signer.sign(_unsigned())
    assert not verifier.verify(signed.model_copy(update={field: 1.1})).valid


def test_a_field_added_to_the_approval_is_signed_without_listing_it(
    signer: ApprovalSigner, verifier: ApprovalVerifier
) -> None:
    # Arrange: a later schema with a new field (e.g. which constraint bound the size)
    class LaterApproval(OrderApproved):
        bound_by: str = "risk_budget"

    signed = signer.sign(_unsigned())
    later = LaterApproval.model_validate(signed.model_dump())
    resigned = LaterApproval.model_validate(signer.sign(later).model_dump())
    # Act
    altered = resigned.model_copy(update={"bound_by": "max_position"})
    # Assert
    assert b'"bound_by":"risk_budget"' in canonical_approval_bytes(resigned)
    assert verifier.verify(resigned).valid
    assert not verifier.verify(altered).valid


def test_the_encoding_names_its_version_and_the_message_type() -> None:
    encoded = canonical_approval_bytes(_unsigned())
    domain, _, document = encoded.partition(b"\x00")
    assert domain == SIGNATURE_DOMAIN
    assert json.loads(document)["encoding"] == APPROVAL_ENCODING
    assert json.loads(document)["type"] == "OrderApproved"


def test_a_signed_approval_survives_the_wire(
    signer: ApprovalSigner, verifier: ApprovalVerifier
) -> None:
    signed = signer.sign(_unsigned(stop_loss=1.05, take_profit=1.3))
    received = OrderApproved.model_validate_json(signed.to_json_bytes())
    assert verifier.verify(received).valid


def test_an_approval_valid_longer_than_the_maximum_is_refused(
    signer: ApprovalSigner, private_key_pem: bytes
) -> None:
    # Arrange
    verifier = ApprovalVerifier.from_pem(
        public_key_pem(private_key_pem), max_lifetime=timedelta(minutes=10)
    )
    within = signer.sign(_unsigned(expires_at=T0 + timedelta(minutes=10)))
    beyond = signer.sign(_unsigned(expires_at=T0 + timedelta(minutes=10, seconds=1)))
    # Act
    accepted, refused = verifier.verify(within), verifier.verify(beyond)
    # Assert
    assert accepted.valid
    assert (refused.valid, refused.code) == (False, "approval_lifetime_exceeded")


def test_the_default_maximum_lifetime_refuses_a_decade(
    signer: ApprovalSigner, verifier: ApprovalVerifier
) -> None:
    result = verifier.verify(signer.sign(_unsigned(expires_at=T0 + timedelta(days=3650))))
    assert verifier.max_lifetime == DEFAULT_MAX_APPROVAL_LIFETIME
    assert result.code == "approval_lifetime_exceeded"


def test_only_the_canonical_spelling_of_a_signature_verifies(
    signer: ApprovalSigner, verifier: ApprovalVerifier
) -> None:
    # Arrange: 86 characters carry 516 bits for 512: every other low-bit pattern is an alias
    signed = signer.sign(_unsigned())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signed.signature[-1])
    aliases = [
        signed.signature[:-1] + alphabet[(last & ~0b1111) | bits]
        for bits in range(16)
        if (last & ~0b1111) | bits != last
    ]
    # Act
    results = [verifier.verify(signed.model_copy(update={"signature": alias})) for alias in aliases]
    # Assert
    assert len(aliases) == 15
    assert not any(result.valid for result in results)


@given(st.binary(min_size=0, max_size=96))
def test_strict_base64_reads_back_exactly_what_was_written(data: bytes) -> None:
    assert b64decode_strict(b64encode_unpadded(data)) == data


@pytest.mark.parametrize("text", ["abc=", "ab c", "ab+/", "a", "AB", "A" * 85 + "B"])
def test_strict_base64_refuses_padding_foreign_characters_and_aliases(text: str) -> None:
    with pytest.raises(ValueError, match="base64"):
        b64decode_strict(text)
