"""RiskEngine: pure, synchronous pre-trade decisions — no I/O, no awaits."""

from __future__ import annotations

from collections.abc import Callable
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
    check_correlated_exposure,
    check_duplicate,
    check_gross_leverage,
    check_margin_utilisation,
    check_market_data,
    check_open_positions,
    check_order_rate,
    check_position_notional,
    check_price_deviation,
    check_risk_per_trade,
    check_trading_state,
    check_value_at_risk,
    size_order,
)
from tai_risk.state import PortfolioState

Rule = Callable[[OrderRequested, PortfolioState, RiskLimits], Verdict]

GATES: tuple[Rule, ...] = (check_price_deviation, check_order_rate, check_market_data)
"""Rules on the order as requested, before sizing."""
LIMITS: tuple[Rule, ...] = (
    check_risk_per_trade,
    check_position_notional,
    check_open_positions,
    check_gross_leverage,
    check_margin_utilisation,
    check_correlated_exposure,
    check_value_at_risk,
)
"""Rules on the sized order, cheapest first (VaR last)."""


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
    """Runs every pre-trade rule, sizes the order and signs what passes.

    Order of evaluation: duplicate id, trading state, fat finger, order rate and stale data on
    the order as requested; then sizing (the approved quantity may be smaller); then risk per
    trade, notional, open positions, leverage, margin, correlated groups and VaR/CVaR on the
    sized order. The first failing rule rejects; the verdicts evaluated so far are kept.
    """

    def __init__(self, limits: RiskLimits, signer: ApprovalSigner, clock: Clock) -> None:
        self.limits = limits
        self.signer = signer
        self.clock = clock

    def evaluate(
        self, request: OrderRequested, portfolio: PortfolioState, state: TradingState
    ) -> tuple[float, list[Verdict]]:
        """Return the approvable quantity and the verdicts, stopping at the first failure."""
        limits = self.limits
        # Called directly, one after the other: no closures per order (orders can be many).
        verdict = check_duplicate(request, portfolio)
        verdicts = [verdict]
        if not verdict.passed:
            return 0.0, verdicts
        verdict = check_trading_state(request, portfolio, state)
        verdicts.append(verdict)
        if not verdict.passed:
            return 0.0, verdicts
        for gate in GATES:
            verdict = gate(request, portfolio, limits)
            verdicts.append(verdict)
            if not verdict.passed:
                return 0.0, verdicts
        sizing = size_order(request, portfolio, limits)
        verdicts.append(sizing.verdict)
        if not sizing.verdict.passed:
            return 0.0, verdicts
        sized = (
            request
            if sizing.quantity == request.quantity
            else request.model_copy(update={"quantity": sizing.quantity})
        )
        for limit in LIMITS:
            verdict = limit(sized, portfolio, limits)
            verdicts.append(verdict)
            if not verdict.passed:
                return 0.0, verdicts
        return sizing.quantity, verdicts

    def check(
        self, request: OrderRequested, portfolio: PortfolioState, state: TradingState
    ) -> Decision:
        """Decide on an order request; the first failing rule rejects it."""
        quantity, verdicts = self.evaluate(request, portfolio, state)
        now = self.clock.now()
        # evaluate stops at the first failure, so only the last verdict can have failed.
        failed = verdicts[-1]
        if not failed.passed:
            rejection = OrderRejected(
                order_id=request.order_id,
                strategy=request.strategy,
                symbol=request.symbol,
                side=request.side,
                quantity=request.quantity,
                rule=failed.rule,
                reason=failed.reason[:256],
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
            quantity=quantity,
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
