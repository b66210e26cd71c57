"""Forged, tampered, unsigned, expired and replayed approvals: refused, alerted, audited.

The real services run on the in-memory bus and SQLite; each attack arrives on ``order.approved``
as an attacker with broker access would send it, after a genuine approval has been filled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from tai_core.signing import ApprovalSigner, generate_private_key_pem
from tai_events import OrderApproved
from tai_events.alerts import Severity
from tests.fuzz.pipeline_harness import MemoryPipeline, memory_pipeline

pytestmark = pytest.mark.integration

REFUSED_ACTION = "execution.approval_refused"


@pytest.fixture
async def traded(tmp_path: Path) -> AsyncIterator[MemoryPipeline]:
    """Yield a pipeline that has replayed 150 bars and filled at least one approval."""
    async with memory_pipeline(tmp_path, bars=150) as pipeline:
        await pipeline.replay()
        assert pipeline.recorded.approvals, "the replay produced no approval to attack"
        yield pipeline


def _genuine(pipeline: MemoryPipeline) -> OrderApproved:
    approval = pipeline.recorded.approvals[0].message
    assert isinstance(approval, OrderApproved)
    return approval


def _forged(pipeline: MemoryPipeline) -> OrderApproved:
    # a well-formed approval for a new order, signed by a key risk never had
    attacker = ApprovalSigner.from_pem(generate_private_key_pem())
    return attacker.sign(
        _genuine(pipeline).model_copy(
            update={"approval_id": "apr-forged", "order_id": "ord-forged", "quantity": 1e6}
        )
    )


def _tampered(pipeline: MemoryPipeline) -> OrderApproved:
    # risk's real signature, a larger quantity
    return _genuine(pipeline).model_copy(update={"quantity": _genuine(pipeline).quantity * 100})


def _unsigned(pipeline: MemoryPipeline) -> OrderApproved:
    return _genuine(pipeline).model_copy(
        update={"approval_id": "apr-unsigned", "order_id": "ord-unsigned", "signature": "A" * 86}
    )


def _expired(pipeline: MemoryPipeline) -> OrderApproved:
    # signed with risk's own key (a stolen approval), but its lifetime is over
    now = pipeline.execution.context.clock.now()
    signer = ApprovalSigner.from_pem(pipeline.private_key_pem)
    return signer.sign(
        _genuine(pipeline).model_copy(
            update={
                "approval_id": "apr-expired",
                "order_id": "ord-expired",
                "issued_at": now - timedelta(minutes=10),
                "expires_at": now - timedelta(minutes=5),
            }
        )
    )


def _fresh(pipeline: MemoryPipeline, name: str, **changes: object) -> OrderApproved:
    # an approval for a new order, genuinely signed with risk's own key (a stolen key's view)
    signer = ApprovalSigner.from_pem(pipeline.private_key_pem)
    update = {"approval_id": f"apr-{name}", "order_id": f"ord-{name}", **changes}
    return signer.sign(_genuine(pipeline).model_copy(update=update))


def _requested_quantity_altered(pipeline: MemoryPipeline) -> OrderApproved:
    # risk's real signature; execution writes requested_quantity to the ledger, so it is signed
    approval = _fresh(pipeline, "requested")
    return approval.model_copy(update={"requested_quantity": approval.requested_quantity * 50})


def _ten_year_lifetime(pipeline: MemoryPipeline) -> OrderApproved:
    # signed by risk's key but valid for ten years: past any sane approval lifetime
    now = pipeline.execution.context.clock.now()
    return _fresh(pipeline, "decade", issued_at=now, expires_at=now + timedelta(days=3650))


def _malleated_signature(pipeline: MemoryPipeline) -> OrderApproved:
    # the same 64 signature bytes spelled differently: the last character's unused bits set
    approval = _fresh(pipeline, "malleated")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(approval.signature[-1])
    other = alphabet[last ^ 0b0001]  # the four low bits of the 86th character are padding
    return approval.model_copy(update={"signature": approval.signature[:-1] + other})


def _replayed(pipeline: MemoryPipeline) -> OrderApproved:
    # the genuine, already filled approval, sent again under a fresh message id
    return _genuine(pipeline)


ATTACKS: dict[str, tuple[Callable[[MemoryPipeline], OrderApproved], str]] = {
    "forged": (_forged, "approval_signature_invalid"),
    "tampered": (_tampered, "approval_signature_invalid"),
    "unsigned": (_unsigned, "approval_signature_invalid"),
    "expired": (_expired, "approval_expired"),
    "replayed": (_replayed, "approval_replayed"),
    "requested_quantity_altered": (_requested_quantity_altered, "approval_signature_invalid"),
    "ten_year_lifetime": (_ten_year_lifetime, "approval_lifetime_exceeded"),
    "malleated_signature": (_malleated_signature, "approval_signature_invalid"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_attacked_approval_is_refused_alerted_and_audited(
    traded: MemoryPipeline, attack: str
) -> None:
    # Arrange
    build, code = ATTACKS[attack]
    approval = build(traded)
    async with traded.store.transaction() as unit:
        fills_before = len(await unit.fills.list())
    working_before = list(traded.execution.context.broker.working_orders())
    alerts_before = len(traded.recorded.alerts)

    # Act
    await traded.bus.publish(approval)
    await traded.bus.drain()

    # Assert: refused (no fill, nothing at the broker) ...
    async with traded.store.transaction() as unit:
        assert len(await unit.fills.list()) == fills_before
        audit = await unit.audit.list(action=REFUSED_ACTION)
    assert list(traded.execution.context.broker.working_orders()) == working_before
    # ... alerted, as critical, naming why ...
    new_alerts = traded.recorded.alerts[alerts_before:]
    assert [alert.code for alert in new_alerts] == [code]
    assert new_alerts[0].severity is Severity.CRITICAL
    # ... and audited with the approval it refused
    assert [entry.outcome for entry in audit] == [code]
    assert audit[0].subject in {approval.approval_id, approval.order_id}
