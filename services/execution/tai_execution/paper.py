"""The paper broker: fills approved market orders at the next bar's open, with commission.

Pure and synchronous, so the backtester and the live execution service run the same object.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tai_core.ids import deterministic_id
from tai_events.market import BarClosed
from tai_events.orders import Side

RECENT_BARS_KEPT = 256


class PaperBrokerConfig(BaseModel):
    """Cost model of the paper broker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    commission_rate: float = Field(
        default=0.0002, ge=0, lt=0.1, description="commission, fraction of each fill's notional"
    )
    slippage_bps: float = Field(
        default=0.0, ge=0, le=1000, description="adverse slippage in basis points of price"
    )


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """An approved order waiting for its fill."""

    order_id: str
    strategy: str
    symbol: str
    side: Side
    quantity: float
    signal_time: datetime
    price_floor: float
    price_ceiling: float


@dataclass(frozen=True, slots=True)
class PaperFill:
    """A fill produced by the paper broker."""

    fill_id: str
    order: WorkingOrder
    price: float
    commission: float
    filled_at: datetime


@dataclass(frozen=True, slots=True)
class PaperRejection:
    """An order the broker refused (its fill price left the approved band)."""

    order: WorkingOrder
    reason: str


class PaperBroker:
    """Holds working orders and recent bars; a bar at or after an order's signal fills it."""

    def __init__(self, config: PaperBrokerConfig | None = None) -> None:
        self.config = config or PaperBrokerConfig()
        self._working: dict[str, WorkingOrder] = {}
        self._recent_bars: dict[str, deque[BarClosed]] = {}

    def working_orders(self) -> list[WorkingOrder]:
        """Return the orders not yet filled, in submission order."""
        return list(self._working.values())

    def remember_bar(self, bar: BarClosed) -> None:
        """Keep a bar so an approval arriving after it can still fill at its open."""
        bars = self._recent_bars.setdefault(bar.symbol, deque(maxlen=RECENT_BARS_KEPT))
        if not bars or bar.opened_at > bars[-1].opened_at:
            bars.append(bar)

    def submit(self, order: WorkingOrder) -> PaperFill | PaperRejection | None:
        """Accept an order; fill it at once if its next bar is already known."""
        if order.order_id in self._working:
            return None
        for bar in self._recent_bars.get(order.symbol, ()):
            if bar.opened_at >= order.signal_time:
                return self._execute(order, bar)
        self._working[order.order_id] = order
        return None

    def on_bar(self, bar: BarClosed) -> list[PaperFill | PaperRejection]:
        """Fill every working order of the bar's symbol whose signal precedes the bar."""
        self.remember_bar(bar)
        due = [
            order
            for order in self._working.values()
            if order.symbol == bar.symbol and bar.opened_at >= order.signal_time
        ]
        results: list[PaperFill | PaperRejection] = []
        for order in due:
            del self._working[order.order_id]
            results.append(self._execute(order, bar))
        return results

    def _execute(self, order: WorkingOrder, bar: BarClosed) -> PaperFill | PaperRejection:
        self._working.pop(order.order_id, None)
        slip = bar.open * self.config.slippage_bps / 10_000.0
        price = bar.open + slip if order.side is Side.BUY else bar.open - slip
        if not order.price_floor <= price <= order.price_ceiling:
            return PaperRejection(
                order,
                f"fill price {price} outside the approved band "
                f"[{order.price_floor}, {order.price_ceiling}]",
            )
        commission = abs(order.quantity) * price * self.config.commission_rate
        return PaperFill(
            fill_id=deterministic_id("fill", order.order_id, 1),
            order=order,
            price=price,
            commission=commission,
            filled_at=bar.opened_at,
        )
