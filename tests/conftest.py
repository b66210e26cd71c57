"""Shared fixtures: keys and a fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tai_core.clock import FakeClock
from tai_core.signing import (
    ApprovalSigner,
    ApprovalVerifier,
    generate_private_key_pem,
    public_key_pem,
)
from tests.factories import T0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + timedelta(days=1))


@pytest.fixture(scope="session")
def private_key_pem() -> bytes:
    return generate_private_key_pem()


@pytest.fixture(scope="session")
def signer(private_key_pem: bytes) -> ApprovalSigner:
    return ApprovalSigner.from_pem(private_key_pem)


@pytest.fixture(scope="session")
def verifier(private_key_pem: bytes) -> ApprovalVerifier:
    return ApprovalVerifier.from_pem(public_key_pem(private_key_pem))
