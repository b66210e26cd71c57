"""Order lifecycle events: request, risk decision, state changes, fills, positions."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Self

from pydantic import Field, model_validator

from tai_events.base import (
    Event,
    FiniteFloat,
    Identifier,
    Name,
    NonNegativeAmount,
    Price,
    Probability,
    Quantity,
    ScalarValue,
    ShortText,
    Symbol,
    UtcDatetime,
)


class Side(StrEnum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """Return +1 for a buy and -1 for a sell."""
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    """How an order is priced."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"


class OrderState(StrEnum):
    """Order state machine states; terminal states end the order."""

    NEW = "NEW"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        """Return True when no further transition is possible."""
        return self in {
            OrderState.FILLED,
            OrderState.CANCELLED,
            OrderState.REJECTED,
            OrderState.EXPIRED,
        }


class TradingStyle(StrEnum):
    """How long a strategy holds its trades; risk caps the risk per trade by style."""

    SCALPING = "scalping"
    INTRADAY = "intraday"
    SWING = "swing"


class SizingConstraint(StrEnum):
    """What set an approved order's quantity."""

    REQUESTED = "requested"
    """The quantity the strategy asked for (nothing smaller was needed)."""
    RISK_BUDGET = "risk_budget"
    """The strategy's risk budget: equity x budget / stop distance."""
    KELLY = "kelly"
    """Fractional Kelly of the win probability and payoff, below the budget."""
    POSITION_HELD = "position_held"
    """A reduce-only order cut to the position the strategy holds."""


class SignalDirection(StrEnum):
    """What a strategy wants its position to be."""

    LONG = "LONG"
    SHORT = "SHORT"
    FLAT = "FLAT"


class _PricedOrderFields(Event):
    order_type: OrderType = OrderType.MARKET
    limit_price: Price | None = None
    stop_price: Price | None = None
    stop_loss: Price | None = None
    take_profit: Price | None = None

    @model_validator(mode="after")
    def _check_prices(self) -> Self:
        if self.order_type is OrderType.LIMIT and self.limit_price is None:
            raise ValueError("a LIMIT order needs limit_price")
        if self.order_type is OrderType.STOP and self.stop_price is None:
            raise ValueError("a STOP order needs stop_price")
        return self


class SignalGenerated(Event):
    """A strategy formed a view on a symbol, with a confidence and a reason."""

    strategy: Name
    symbol: Symbol
    direction: SignalDirection
    confidence: Probability
    reason: ShortText
    bar_closed_at: UtcDatetime
    stop_loss: Price | None = None
    take_profit: Price | None = None


class OrderRequested(_PricedOrderFields):
    """A strategy asks risk to approve an order: its intent, sized by risk.

    An entry states side, stop, target, its style's risk budget and, where the strategy has
    one, a win probability, and leaves ``quantity`` empty: risk turns the intent into a
    quantity from the live account. A strategy that trades a fixed size gives ``quantity``
    (risk may shrink it to fit its limits). An exit gives exactly the quantity the strategy
    holds and is ``reduce_only``.
    """

    schema_version: ClassVar[int] = 2

    order_id: Identifier
    strategy: Name
    symbol: Symbol
    side: Side
    quantity: Quantity | None = None
    """Units wanted; None = risk sizes the order from ``risk_budget_pct`` and the stop."""
    reference_price: Price
    """Last price the strategy saw (used by fat-finger and sizing checks)."""
    signal_time: UtcDatetime
    """Market time of the decision: the close of the bar that triggered it."""
    requested_at: UtcDatetime
    confidence: Probability | None = None
    win_probability: Probability | None = None
    """The strategy's probability that the trade reaches its target (enables Kelly sizing)."""
    style: TradingStyle | None = None
    """The strategy's trading style: selects risk's per-style risk-per-trade cap."""
    risk_budget_pct: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] | None = None
    """Share of equity the trade may lose at its stop, in %, before risk's caps."""
    reduce_only: bool = False
    """Only ever shrink the strategy's position (an exit): never opens or reverses."""
    reason: ShortText = ""

    @model_validator(mode="after")
    def _check_intent(self) -> Self:
        if self.reduce_only and self.quantity is None:
            raise ValueError("a reduce_only order states the quantity it closes")
        if self.quantity is None and self.risk_budget_pct is None:
            raise ValueError("an order without quantity needs risk_budget_pct for risk to size")
        return self


class OrderApproved(_PricedOrderFields):
    """Risk approved an order; the signature covers every field execution acts on."""

    schema_version: ClassVar[int] = 2

    approval_id: Identifier
    order_id: Identifier
    strategy: Name
    symbol: Symbol
    side: Side
    quantity: Quantity
    requested_quantity: Quantity | None
    """What the strategy asked for; None when risk sized the order from its intent."""
    sized_by: Name = SizingConstraint.REQUESTED.value
    """The constraint that set ``quantity``: a SizingConstraint or the risk rule it was cut to."""
    reduce_only: bool = False
    price_floor: Price
    """Lowest acceptable fill price."""
    price_ceiling: Price
    """Highest acceptable fill price."""
    signal_time: UtcDatetime
    issued_at: UtcDatetime
    expires_at: UtcDatetime
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    signature: str = Field(pattern=r"^[A-Za-z0-9_-]{86}$")
    """Ed25519 signature, URL-safe base64 without padding."""

    @model_validator(mode="after")
    def _check_bounds(self) -> Self:
        if self.price_floor > self.price_ceiling:
            raise ValueError("price_floor must not exceed price_ceiling")
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self


class OrderRejected(Event):
    """Risk (or a broker) refused an order; names the rule and the values it saw."""

    schema_version: ClassVar[int] = 2

    order_id: Identifier
    strategy: Name
    symbol: Symbol
    side: Side
    quantity: Quantity | None
    """The quantity requested; None when the strategy left sizing to risk."""
    rule: Name
    reason: ShortText
    values: dict[str, ScalarValue] = Field(default_factory=dict)
    decided_at: UtcDatetime


class OrderStatusChanged(Event):
    """An order moved from one state to another (routed as ``order.<state>``)."""

    order_id: Identifier
    symbol: Symbol
    state: OrderState
    previous_state: OrderState | None
    filled_quantity: NonNegativeAmount
    remaining_quantity: NonNegativeAmount
    reason: ShortText = ""
    changed_at: UtcDatetime


class FillExecuted(Event):
    """A broker filled (part of) an order."""

    fill_id: Identifier
    order_id: Identifier
    strategy: Name
    symbol: Symbol
    side: Side
    quantity: Quantity
    price: Price
    commission: NonNegativeAmount
    filled_at: UtcDatetime
    broker: Name


class PositionUpdated(Event):
    """A position changed after a fill or a mark-to-market."""

    symbol: Symbol
    quantity: FiniteFloat
    """Signed: positive long, negative short, zero flat."""
    average_price: NonNegativeAmount
    realized_pnl: FiniteFloat
    unrealized_pnl: FiniteFloat
    mark_price: Price
    updated_at: UtcDatetime
