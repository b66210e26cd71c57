"""Break-glass requests: only an operator key signs them, briefly, and each works once."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from tai_core.breakglass import OperatorSigner, OperatorVerifier
from tai_core.signing import generate_private_key_pem, public_key_pem
from tests.factories import T0

MAX_AGE = timedelta(minutes=2)


@pytest.fixture
def operator_pem() -> bytes:
    return generate_private_key_pem()


@pytest.fixture
def verifier(operator_pem: bytes) -> OperatorVerifier:
    other = public_key_pem(generate_private_key_pem()).decode("ascii")
    mine = public_key_pem(operator_pem).decode("ascii")
    return OperatorVerifier.from_pem(other + mine, max_age=MAX_AGE)


def test_a_signed_halt_holds_once(operator_pem: bytes, verifier: OperatorVerifier) -> None:
    request = OperatorSigner.from_pem(operator_pem).sign("halt_trading", "drill", T0)
    first = verifier.check(request, T0 + timedelta(seconds=5))
    again = verifier.check(request, T0 + timedelta(seconds=6))
    assert first.valid
    assert (again.valid, again.reason) == (False, "request already used")


@pytest.mark.parametrize(
    "change", [{"reason": "other"}, {"action": "resume_trading"}, {"request_id": "0" * 32}]
)
def test_an_altered_request_is_refused(
    operator_pem: bytes, verifier: OperatorVerifier, change: dict[str, str]
) -> None:
    request = OperatorSigner.from_pem(operator_pem).sign("halt_trading", "drill", T0)
    assert not verifier.check(dataclasses.replace(request, **change), T0).valid


@pytest.mark.parametrize(
    "offset", [MAX_AGE + timedelta(seconds=1), -MAX_AGE - timedelta(seconds=1)]
)
def test_a_stale_or_future_request_is_refused(
    operator_pem: bytes, verifier: OperatorVerifier, offset: timedelta
) -> None:
    request = OperatorSigner.from_pem(operator_pem).sign("halt_trading", "drill", T0)
    assert not verifier.check(request, T0 + offset).valid


def test_an_unknown_key_is_refused(verifier: OperatorVerifier) -> None:
    request = OperatorSigner.from_pem(generate_private_key_pem()).sign("halt_trading", "x", T0)
    result = verifier.check(request, T0)
    assert (result.valid, result.reason.startswith("unknown operator key")) == (False, True)


def test_only_halting_can_be_signed(operator_pem: bytes) -> None:
    with pytest.raises(ValueError, match="break-glass action"):
        OperatorSigner.from_pem(operator_pem).sign("resume_trading", "no", T0)
