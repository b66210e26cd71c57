"""Checks execution makes before acting on an approval (single use is kept in the ledger)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tai_core.signing import ApprovalVerifier
from tai_events.orders import OrderApproved


@dataclass(frozen=True, slots=True)
class ApprovalCheck:
    """Whether execution may act on an approval, and why not."""

    accepted: bool
    code: str
    reason: str


def check_approval(
    approval: OrderApproved, verifier: ApprovalVerifier, now: datetime
) -> ApprovalCheck:
    """Refuse unsigned, forged, altered, over-long-lived or expired approvals.

    The verifier checks the signature over every field and the lifetime (``expires_at -
    issued_at`` at most its ``max_lifetime``); this adds the clock: not yet expired, not
    issued in the future.
    """
    verification = verifier.verify(approval)
    if not verification.valid:
        return ApprovalCheck(False, verification.code, verification.reason)
    if now >= approval.expires_at:
        return ApprovalCheck(
            False,
            "approval_expired",
            f"approval expired at {approval.expires_at.isoformat()} (now {now.isoformat()})",
        )
    if approval.issued_at > now:
        return ApprovalCheck(False, "approval_from_future", "approval issued in the future")
    return ApprovalCheck(True, "valid", "valid")
