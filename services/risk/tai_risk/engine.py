"""RiskEngine: pure, synchronous pre-trade decisions — no I/O, no awaits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from tai_core.clock import Clock
from tai_core.ids import deterministic_id
from tai_core.signing import UNSIGNED_KEY_ID, UNSIGNED_SIGNATURE, ApprovalSigner
from tai_events.orders import OrderApproved, OrderRejected, OrderRequested
from tai_events.risk import TradingState
from tai_risk.checks import (
    RiskLimits,
    Verdict,
    check_duplicate,
    check_open_positions,
    check_position_notional,
    check_price_deviation,
    check_trading_state,
)
from tai_risk.state import PortfolioState


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one check: an approval (signed) or a rejection, and every verdict."""

    request: OrderRequested
    verdicts: tuple[Verdict, ...]
    approval: OrderApproved | None = None
    rejection: OrderRejected | None = None

    @property
    def approved(self) -> bool:
        """Return True when the order was approved."""
        return self.approval is not None

    @property
    def rule(self) -> str | None:
        """Return the first failed rule's name, if any."""
        return self.rejection.rule if self.rejection else None


class RiskEngine:
    """Runs every pre-trade rule and signs what passes."""

    def __init__(self, limits: RiskLimits, signer: ApprovalSigner, clock: Clock) -> None:
        self.limits = limits
        self.signer = signer
        self.clock = clock

    def check(
        self, request: OrderRequested, portfolio: PortfolioState, state: TradingState
    ) -> Decision:
        """Decide on an order request; the first failing rule rejects it."""
        duplicate = check_duplicate(request, portfolio)
        verdicts = [duplicate]
        if duplicate.passed:
            verdicts += [
                check_trading_state(request, portfolio, state),
                check_price_deviation(request, portfolio, self.limits),
                check_open_positions(request, portfolio, self.limits),
                check_position_notional(request, portfolio, self.limits),
            ]
        now = self.clock.now()
        failed = next((verdict for verdict in verdicts if not verdict.passed), None)
        if failed is not None:
            rejection = OrderRejected(
                order_id=request.order_id,
                strategy=request.strategy,
                symbol=request.symbol,
                side=request.side,
                quantity=request.quantity,
                rule=failed.rule,
                reason=failed.reason,
                values=failed.values,
                decided_at=now,
            )
            return Decision(request=request, verdicts=tuple(verdicts), rejection=rejection)
        tolerance = self.limits.fill_price_tolerance_pct / 100.0
        unsigned = OrderApproved(
            approval_id=deterministic_id("apr", request.order_id),
            order_id=request.order_id,
            strategy=request.strategy,
            symbol=request.symbol,
            side=request.side,
            quantity=request.quantity,
            requested_quantity=request.quantity,
            order_type=request.order_type,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            stop_loss=request.stop_loss,
            take_profit=request.take_profit,
            price_floor=request.reference_price * (1 - tolerance),
            price_ceiling=request.reference_price * (1 + tolerance),
            signal_time=request.signal_time,
            issued_at=now,
            expires_at=now + timedelta(seconds=self.limits.approval_ttl_seconds),
            key_id=UNSIGNED_KEY_ID,
            signature=UNSIGNED_SIGNATURE,
        )
        return Decision(
            request=request, verdicts=tuple(verdicts), approval=self.signer.sign(unsigned)
        )
