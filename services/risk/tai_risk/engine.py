"""RiskEngine: pure, synchronous pre-trade decisions — no I/O, no awaits."""

from __future__ import annotations

import math
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


SHRINKABLE = frozenset(
    {
        "risk_per_trade",
        "max_position_notional",
        "gross_leverage",
        "margin_utilisation",
        "correlated_exposure",
        "value_at_risk",
        "expected_shortfall",
    }
)
"""Rules that bound the size of new exposure: an order they refuse is cut until it fits."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What the rules allow: the quantity, the constraint that set it, and every verdict."""

    quantity: float
    sized_by: str
    verdicts: list[Verdict]


class RiskEngine:
    """Runs every pre-trade rule, sizes the order and signs what passes.

    Order of evaluation: duplicate id, trading state, fat finger, order rate and stale data on
    the order as requested; then sizing (an intent gets its quantity from the risk budget,
    fractional Kelly and the stop; a reduce-only exit is cut to what its strategy holds); then
    risk per trade, notional, open positions, leverage, margin, correlated groups and VaR/CVaR
    on the sized order. A size limit that refuses the order shrinks it to the largest whole
    increment that fits (its verdict then names the rule that bound the size); only when not
    even one increment fits, or a rule that no size can satisfy fails, is the order rejected.
    The verdicts evaluated so far are kept.
    """

    def __init__(self, limits: RiskLimits, signer: ApprovalSigner, clock: Clock) -> None:
        self.limits = limits
        self.signer = signer
        self.clock = clock

    def evaluate(
        self, request: OrderRequested, portfolio: PortfolioState, state: TradingState
    ) -> Evaluation:
        """Return the approvable quantity and the verdicts, stopping at the first failure."""
        limits = self.limits
        # Called directly, one after the other: no closures per order (orders can be many).
        verdict = check_duplicate(request, portfolio)
        verdicts = [verdict]
        if not verdict.passed:
            return Evaluation(0.0, "", verdicts)
        verdict = check_trading_state(request, portfolio, state)
        verdicts.append(verdict)
        if not verdict.passed:
            return Evaluation(0.0, "", verdicts)
        for gate in GATES:
            verdict = gate(request, portfolio, limits)
            verdicts.append(verdict)
            if not verdict.passed:
                return Evaluation(0.0, "", verdicts)
        sizing = size_order(request, portfolio, limits)
        verdicts.append(sizing.verdict)
        if not sizing.verdict.passed:
            return Evaluation(0.0, "", verdicts)
        quantity, sized_by = sizing.quantity, sizing.sized_by
        sized = (
            request
            if sizing.quantity == request.quantity
            else request.model_copy(update={"quantity": sizing.quantity})
        )
        for limit in LIMITS:
            verdict = limit(sized, portfolio, limits)
            if not verdict.passed and verdict.rule in SHRINKABLE:
                fitted = self._shrink(limit, sized, portfolio)
                if fitted is not None:
                    verdicts.append(
                        Verdict(
                            verdict.rule,
                            True,
                            f"cut from {_format(quantity)} to {_format(fitted.quantity or 0.0)} "
                            f"to fit: {verdict.reason}",
                            verdict.values,
                        )
                    )
                    sized = fitted
                    quantity = fitted.quantity or 0.0
                    sized_by = verdict.rule
                    continue
            verdicts.append(verdict)
            if not verdict.passed:
                return Evaluation(0.0, "", verdicts)
        return Evaluation(quantity, sized_by, verdicts)

    def _shrink(
        self, limit: Rule, request: OrderRequested, portfolio: PortfolioState
    ) -> OrderRequested | None:
        """Return the request cut to the largest whole increment ``limit`` passes, if any.

        The size limits grow with the quantity (more units, more exposure), so a binary search
        over whole increments finds the largest that passes; an order that shrinks exposure
        never reaches here (those rules pass it).
        """
        increment = self.limits.quantity_increment
        wanted = request.quantity or 0.0
        high = math.floor(wanted / increment + 1e-9) - (1 if _is_whole(wanted, increment) else 0)
        low = 0
        best: OrderRequested | None = None
        while low < high:
            middle = (low + high + 1) // 2
            candidate = request.model_copy(update={"quantity": middle * increment})
            if limit(candidate, portfolio, self.limits).passed:
                low, best = middle, candidate
            else:
                high = middle - 1
        return best

    def check(
        self, request: OrderRequested, portfolio: PortfolioState, state: TradingState
    ) -> Decision:
        """Decide on an order request; the first failing rule rejects it."""
        evaluation = self.evaluate(request, portfolio, state)
        verdicts = evaluation.verdicts
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
            quantity=evaluation.quantity,
            requested_quantity=request.quantity,
            sized_by=evaluation.sized_by,
            reduce_only=request.reduce_only,
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


def _is_whole(quantity: float, increment: float) -> bool:
    """Return True when ``quantity`` is (within float noise) a whole number of increments."""
    steps = quantity / increment
    return abs(steps - round(steps)) < 1e-9


def _format(quantity: float) -> str:
    return f"{quantity:.10g}"
