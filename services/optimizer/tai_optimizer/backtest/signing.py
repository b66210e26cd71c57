"""A cheap approval signer for backtests: same approvals as live, a keyed BLAKE2b tag instead
of an Ed25519 signature.

Live risk signs every approval with Ed25519 (~100-200 µs each) so that execution can verify it
with a public key. Inside one backtest process the risk engine and the broker are wired
directly and nothing crosses a trust boundary, so the public-key signature buys nothing; the
approval's every other field (ids, band, expiry, key id) stays exactly what the live engine
produces. The tag is still a real MAC over the canonical approval bytes with a per-run secret,
so a test can check that the broker only ever saw untampered approvals.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from tai_core.signing import ApprovalSigner, canonical_approval_bytes
from tai_events.orders import OrderApproved

BACKTEST_KEY_ID = "backtest00000000"
"""Key id of backtest approvals: never one of the live keys execution trusts."""


class BacktestApprovalSigner(ApprovalSigner):
    """Tag approvals with BLAKE2b keyed by a per-run secret; verify them with ``verify``."""

    def __init__(self, secret: bytes | None = None) -> None:
        # Deliberately skips ApprovalSigner.__init__: there is no Ed25519 key here.
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self.key_id = BACKTEST_KEY_ID

    def _tag(self, approval: OrderApproved) -> str:
        digest = hashlib.blake2b(
            canonical_approval_bytes(approval), key=self._secret, digest_size=64
        ).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def sign(self, unsigned: OrderApproved) -> OrderApproved:
        """Return the approval with the backtest key id and a tag over its canonical bytes."""
        # The fields come from the risk engine's already validated approval; only the key id
        # and the tag (86 base64 characters, as an Ed25519 signature) change: no re-validation.
        with_key = unsigned.model_copy(update={"key_id": self.key_id})
        return with_key.model_copy(update={"signature": self._tag(with_key)})

    def verify(self, approval: OrderApproved) -> bool:
        """Return True when the approval carries this run's key id and an intact tag."""
        if approval.key_id != self.key_id:
            return False
        return hmac.compare_digest(approval.signature, self._tag(approval))
