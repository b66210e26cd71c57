"""The backtest broker: the live paper broker plus the cost model and intrabar SL/TP triggers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tai_core.ids import deterministic_id
from tai_events.market import BarClosed
from tai_events.orders import Side
from tai_execution.paper import (
    PaperBroker,
    PaperBrokerConfig,
    PaperFill,
    PaperRejection,
    WorkingOrder,
)
from tai_optimizer.backtest.costs import CostModel


class ExitReason(StrEnum):
    """Why a position (or part of it) was closed."""

    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


@dataclass(frozen=True, slots=True)
class Bracket:
    """Protective exits of a position, approved (and signed) with its entry order."""

    symbol: str
    direction: int
    """+1 protects a long position, -1 a short one."""
    stop_loss: float | None
    take_profit: float | None
    entry_order_id: str


@dataclass(frozen=True, slots=True)
class Trigger:
    """A bracket leg that fired inside a bar: the exit price the market gave."""

    bracket: Bracket
    reason: ExitReason
    price: float


def bracket_trigger(bracket: Bracket, bar: BarClosed) -> Trigger | None:
    """Return the bracket leg a bar triggers, the stop when both could have hit.

    Nothing inside an OHLC bar tells which level traded first, so the conservative rule
    assumes the loss. A bar that opens beyond a level fills at the open (a gap).
    """
    stop, target = bracket.stop_loss, bracket.take_profit
    if bracket.direction > 0:
        if stop is not None and bar.low <= stop:
            return Trigger(bracket, ExitReason.STOP_LOSS, min(bar.open, stop))
        if target is not None and bar.high >= target:
            return Trigger(bracket, ExitReason.TAKE_PROFIT, max(bar.open, target))
        return None
    if stop is not None and bar.high >= stop:
        return Trigger(bracket, ExitReason.STOP_LOSS, max(bar.open, stop))
    if target is not None and bar.low <= target:
        return Trigger(bracket, ExitReason.TAKE_PROFIT, min(bar.open, target))
    return None


class BacktestBroker(PaperBroker):
    """PaperBroker whose fills price spread, slippage and every commission component."""

    def __init__(self, costs: CostModel) -> None:
        super().__init__(
            PaperBrokerConfig(
                commission_rate=costs.commission_rate, slippage_bps=costs.slippage_bps
            )
        )
        self.costs = costs
        self.brackets: dict[str, Bracket] = {}

    def remember_bar(self, bar: BarClosed) -> None:
        """Keep only the symbol's latest bar: the backtester submits orders on the very bar
        that fills them, so older bars would only lengthen ``submit``'s scan."""
        bars = self._recent_bars.get(bar.symbol)
        if bars is None:
            super().remember_bar(bar)
        elif bar.opened_at > bars[-1].opened_at:
            bars.clear()
            bars.append(bar)

    def _execute(self, order: WorkingOrder, bar: BarClosed) -> PaperFill | PaperRejection:
        price = self.costs.fill_price(order.side.sign, bar.open)
        if not order.price_floor <= price <= order.price_ceiling:
            return PaperRejection(
                order,
                f"fill price {price} outside the approved band "
                f"[{order.price_floor}, {order.price_ceiling}]",
            )
        return PaperFill(
            fill_id=deterministic_id("fill", order.order_id, 1),
            order=order,
            price=price,
            commission=self.costs.commission(order.quantity, price),
            filled_at=bar.opened_at,
        )

    def exit_fill(self, trigger: Trigger, quantity: float, bar: BarClosed) -> PaperFill:
        """Fill a triggered bracket leg for ``quantity`` units and drop the bracket."""
        bracket = trigger.bracket
        self.brackets.pop(bracket.symbol, None)
        side = Side.SELL if bracket.direction > 0 else Side.BUY
        price = self.costs.fill_price(side.sign, trigger.price)
        order_id = deterministic_id("exit", bracket.entry_order_id, trigger.reason.value)
        order = WorkingOrder(
            order_id=order_id,
            strategy="bracket",
            symbol=bracket.symbol,
            side=side,
            quantity=quantity,
            signal_time=bar.opened_at,
            price_floor=price,
            price_ceiling=price,
        )
        return PaperFill(
            fill_id=deterministic_id("fill", order_id, 1),
            order=order,
            price=price,
            commission=self.costs.commission(quantity, price),
            filled_at=bar.opened_at,
        )
