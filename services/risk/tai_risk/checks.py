"""Pre-trade rules: one function per rule, each returning a named verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from tai_events.base import ScalarValue
from tai_events.orders import OrderRequested
from tai_events.risk import TradingState
from tai_risk.state import PortfolioState


class RiskLimits(BaseModel):
    """Configurable limits; the defaults are the documented production defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position_notional_pct: float = Field(
        default=20.0, gt=0, le=1000, description="max notional per symbol, % of equity"
    )
    max_open_positions: int = Field(default=10, ge=1)
    max_price_deviation_pct: float = Field(
        default=5.0, gt=0, description="fat-finger: max distance from the last price, %"
    )
    fill_price_tolerance_pct: float = Field(
        default=2.0, gt=0, description="approved fill band around the reference price, %"
    )
    approval_ttl_seconds: float = Field(default=300.0, gt=0)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A rule's outcome: passed, or failed with a reason and the values it saw."""

    rule: str
    passed: bool
    reason: str = ""
    values: dict[str, ScalarValue] = field(default_factory=dict)


def _shrinks_exposure(request: OrderRequested, portfolio: PortfolioState) -> bool:
    before = abs(portfolio.projected_quantity(request.symbol))
    after = abs(portfolio.after(request.symbol, request.side, request.quantity))
    return after < before - 1e-9


def check_trading_state(
    request: OrderRequested, portfolio: PortfolioState, state: TradingState
) -> Verdict:
    """HALTED admits nothing; REDUCING admits only orders that shrink exposure."""
    if state is TradingState.HALTED:
        return Verdict("trading_state", False, "trading is HALTED", {"state": state.value})
    if state is TradingState.REDUCING and not _shrinks_exposure(request, portfolio):
        return Verdict(
            "trading_state",
            False,
            "trading is REDUCING and this order does not reduce exposure",
            {
                "state": state.value,
                "position": portfolio.projected_quantity(request.symbol),
                "position_after": portfolio.after(request.symbol, request.side, request.quantity),
            },
        )
    return Verdict("trading_state", True)


def check_duplicate(request: OrderRequested, portfolio: PortfolioState) -> Verdict:
    """Refuse an order id that was already decided."""
    if request.order_id in portfolio.decided_order_ids:
        return Verdict("duplicate_order", False, f"order id {request.order_id} was already decided")
    return Verdict("duplicate_order", True)


def check_price_deviation(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse a reference price too far from the last market price (fat finger)."""
    last = portfolio.last_prices.get(request.symbol)
    if last is None:
        return Verdict("price_deviation", True)
    deviation_pct = abs(request.reference_price - last) / last * 100.0
    if deviation_pct > limits.max_price_deviation_pct:
        return Verdict(
            "price_deviation",
            False,
            f"price {request.reference_price} is {deviation_pct:.2f}% from the last price {last}",
            {
                "reference_price": request.reference_price,
                "last_price": last,
                "deviation_pct": round(deviation_pct, 6),
                "limit_pct": limits.max_price_deviation_pct,
            },
        )
    return Verdict("price_deviation", True)


def check_position_notional(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse a resulting position whose notional exceeds its share of equity."""
    after = portfolio.after(request.symbol, request.side, request.quantity)
    notional = abs(after) * request.reference_price
    limit = portfolio.equity * limits.max_position_notional_pct / 100.0
    if notional > limit and not _shrinks_exposure(request, portfolio):
        return Verdict(
            "max_position_notional",
            False,
            f"position notional {notional:.2f} would exceed {limit:.2f} "
            f"({limits.max_position_notional_pct}% of equity {portfolio.equity:.2f})",
            {
                "notional": round(notional, 6),
                "limit": round(limit, 6),
                "equity": round(portfolio.equity, 6),
                "position_after": after,
            },
        )
    return Verdict("max_position_notional", True)


def check_open_positions(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse opening a new symbol beyond the maximum number of open positions."""
    opens_new = abs(portfolio.projected_quantity(request.symbol)) < 1e-9
    count = portfolio.open_position_count()
    if opens_new and count >= limits.max_open_positions:
        return Verdict(
            "max_open_positions",
            False,
            f"{count} positions are open; the limit is {limits.max_open_positions}",
            {"open_positions": count, "limit": limits.max_open_positions},
        )
    return Verdict("max_open_positions", True)
