"""Shared fixtures: keys and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture(scope="session", autouse=True)
def _bar_cache_in_a_temporary_directory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Keep the commands' cache of validated bars (``TAI_BAR_CACHE``) out of the work tree."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAI_BAR_CACHE", str(tmp_path_factory.mktemp("bar-cache")))
        yield


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
