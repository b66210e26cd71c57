"""The paper broker: fills approved orders against the next bar, with a realistic cost model.

Market orders fill at the open of the first bar at or after their signal; limit and stop orders
when the bar's range reaches their price (at the open when the bar gaps through it). Costs:
a bid/ask spread around the bar's mid prices, adverse slippage on market and stop fills, and a
commission per trade, per unit and as a share of notional. An order larger than a configured
share of a bar's volume fills in parts over several bars. An entry carrying a stop-loss and/or
take-profit arms a bracket (one-cancels-other): the first leg the market reaches closes the
position and cancels the other; when one bar could have reached both, the stop-loss is assumed
(nothing in an OHLC bar says which traded first, so the loss is the conservative reading).

Pure and synchronous, so the backtester and the live execution service run the same object.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tai_core.accounting import QUANTITY_EPSILON
from tai_core.ids import deterministic_id
from tai_events.market import BarClosed
from tai_events.orders import OrderApproved, OrderType, Side

RECENT_BARS_KEPT = 256
BASIS_POINTS = 10_000.0


class PaperBrokerConfig(BaseModel):
    """Cost and liquidity model of the paper broker (all costs default to what they were)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    commission_rate: float = Field(
        default=0.0002, ge=0, lt=0.1, description="commission, fraction of each fill's notional"
    )
    slippage_bps: float = Field(
        default=0.0, ge=0, le=1000, description="adverse slippage in basis points of price"
    )
    spread_bps: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        description="full bid/ask spread in basis points; bars are mid prices, buys pay half "
        "the spread above the mid and sells receive half below",
    )
    commission_per_trade: float = Field(default=0.0, ge=0, description="fixed fee per fill")
    commission_per_unit: float = Field(default=0.0, ge=0, description="fee per unit filled")
    max_volume_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="largest share of a bar's volume one order may take; the rest waits for "
        "later bars (bars reporting no volume, as FX often does, are not capped)",
    )

    def commission(self, quantity: float, price: float) -> float:
        """Return the commission of a fill of ``quantity`` units at ``price``."""
        quantity = abs(quantity)
        return (
            self.commission_per_trade
            + self.commission_per_unit * quantity
            + quantity * price * self.commission_rate
        )

    def half_spread(self, price: float) -> float:
        """Return half the bid/ask spread at a mid price."""
        return price * self.spread_bps / BASIS_POINTS / 2.0

    def slippage(self, price: float) -> float:
        """Return the adverse slippage at a price."""
        return price * self.slippage_bps / BASIS_POINTS


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """An approved order waiting for its fill (a bracket leg names its parent entry)."""

    order_id: str
    strategy: str
    symbol: str
    side: Side
    quantity: float
    signal_time: datetime
    price_floor: float
    price_ceiling: float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    parent_order_id: str | None = None

    @property
    def is_bracket_leg(self) -> bool:
        """Return True for the stop-loss or take-profit leg of a bracket."""
        return self.parent_order_id is not None


@dataclass(frozen=True, slots=True)
class PaperFill:
    """A fill produced by the paper broker (``quantity`` None means the whole order)."""

    fill_id: str
    order: WorkingOrder
    price: float
    commission: float
    filled_at: datetime
    quantity: float | None = None

    @property
    def filled_quantity(self) -> float:
        """Return the units this fill traded."""
        return self.order.quantity if self.quantity is None else self.quantity


@dataclass(frozen=True, slots=True)
class PaperRejection:
    """An order the broker refused (its fill price left the approved band)."""

    order: WorkingOrder
    reason: str


@dataclass(frozen=True, slots=True)
class PaperCancellation:
    """An order (or its unfilled rest) the broker cancelled, e.g. the other leg of an OCO."""

    order: WorkingOrder
    reason: str


@dataclass(frozen=True, slots=True)
class PaperBracketArmed:
    """An entry's first fill armed its protective legs (each a working order)."""

    entry: WorkingOrder
    legs: tuple[WorkingOrder, ...]


PaperResult = PaperFill | PaperRejection | PaperCancellation | PaperBracketArmed


@dataclass(frozen=True, slots=True)
class Bracket:
    """The armed legs protecting an entry's filled quantity."""

    entry: WorkingOrder
    stop_loss: WorkingOrder | None
    take_profit: WorkingOrder | None
    protected_quantity: float

    @property
    def legs(self) -> tuple[WorkingOrder, ...]:
        """Return the armed legs, stop-loss first."""
        return tuple(leg for leg in (self.stop_loss, self.take_profit) if leg is not None)


def bracket_legs(entry: WorkingOrder) -> tuple[WorkingOrder | None, WorkingOrder | None]:
    """Return the (stop-loss, take-profit) legs an entry asks for, with deterministic ids."""
    exit_side = Side.SELL if entry.side is Side.BUY else Side.BUY
    common = {
        "strategy": entry.strategy,
        "symbol": entry.symbol,
        "side": exit_side,
        "quantity": entry.quantity,
        "signal_time": entry.signal_time,
        "price_floor": 0.0,
        "price_ceiling": math.inf,
        "parent_order_id": entry.order_id,
    }
    stop = (
        None
        if entry.stop_loss is None
        else WorkingOrder(
            order_id=deterministic_id("sl", entry.order_id),
            order_type=OrderType.STOP,
            stop_price=entry.stop_loss,
            **common,  # type: ignore[arg-type]
        )
    )
    target = (
        None
        if entry.take_profit is None
        else WorkingOrder(
            order_id=deterministic_id("tp", entry.order_id),
            order_type=OrderType.LIMIT,
            limit_price=entry.take_profit,
            **common,  # type: ignore[arg-type]
        )
    )
    return stop, target


class PaperBroker:
    """Holds working orders, brackets and recent bars; bars at or after a signal fill orders."""

    def __init__(self, config: PaperBrokerConfig | None = None) -> None:
        self.config = config or PaperBrokerConfig()
        self._working: dict[str, WorkingOrder] = {}
        self._recent_bars: dict[str, deque[BarClosed]] = {}
        self._filled: dict[str, float] = {}
        self._fill_counts: dict[str, int] = {}
        self._brackets: dict[str, Bracket] = {}
        self._bracket_checked: dict[str, datetime] = {}
        """Per entry id, the open time of the last bar its bracket was checked against."""
        self._net: dict[str, float] = {}

    # -- queries -----------------------------------------------------------------------------

    def working_orders(self) -> list[WorkingOrder]:
        """Return the orders not yet (fully) filled, in submission order (legs excluded)."""
        return list(self._working.values())

    def armed_brackets(self) -> list[Bracket]:
        """Return the armed brackets."""
        return list(self._brackets.values())

    def positions(self) -> dict[str, float]:
        """Return the broker's own book: the signed net quantity per symbol, flat ones omitted."""
        return {
            symbol: quantity
            for symbol, quantity in self._net.items()
            if abs(quantity) >= QUANTITY_EPSILON
        }

    def filled_quantity(self, order_id: str) -> float:
        """Return how much of a working order has filled so far."""
        return self._filled.get(order_id, 0.0)

    # -- restoring state after a restart -----------------------------------------------------

    def restore_order(self, order: WorkingOrder, filled_quantity: float, fills: int) -> None:
        """Put back a working order that had already filled ``filled_quantity`` in ``fills``."""
        self._working[order.order_id] = order
        if fills:
            self._filled[order.order_id] = filled_quantity
            self._fill_counts[order.order_id] = fills

    def restore_bracket(self, entry: WorkingOrder, protected_quantity: float) -> Bracket:
        """Re-arm an entry's bracket protecting ``protected_quantity``."""
        stop, target = bracket_legs(entry)
        bracket = Bracket(entry, stop, target, protected_quantity)
        self._brackets[entry.order_id] = bracket
        return bracket

    def restore_position(self, symbol: str, quantity: float) -> None:
        """Set the broker's net position in a symbol."""
        self._net[symbol] = quantity

    # -- events ------------------------------------------------------------------------------

    def remember_bar(self, bar: BarClosed) -> None:
        """Keep a bar so an approval arriving after it can still fill at its open."""
        bars = self._recent_bars.setdefault(bar.symbol, deque(maxlen=RECENT_BARS_KEPT))
        if not bars or bar.opened_at > bars[-1].opened_at:
            bars.append(bar)

    def submit(self, order: WorkingOrder) -> PaperFill | PaperRejection | None:
        """Accept an order; return its first fill (or rejection) if a known bar already fills it.

        Kept for callers that only trade whole market orders (the backtester); use
        ``submit_all`` to see partial fills, brackets and cancellations too.
        """
        for result in self.submit_all(order):
            if isinstance(result, PaperFill | PaperRejection):
                return result
        return None

    def missing_history(self, order: WorkingOrder) -> tuple[datetime, datetime] | None:
        """Return the [start, end) of bars since the order's signal that are no longer kept.

        An approval can arrive after more bars than are kept in memory (a consumer that ran
        behind, or a restart): the caller fetches that span from the stored bars, so the order
        still fills at the first bar after its signal.
        """
        bars = self._recent_bars.get(order.symbol)
        if not bars or bars[0].opened_at <= order.signal_time:
            return None
        return order.signal_time, bars[0].opened_at

    def submit_all(
        self, order: WorkingOrder, earlier_bars: Sequence[BarClosed] = ()
    ) -> list[PaperResult]:
        """Accept an order and replay the bars seen since its signal against it.

        ``earlier_bars`` are stored bars older than the ones kept (see ``missing_history``).
        """
        if order.order_id in self._working or order.order_id in self._fill_counts:
            return []
        self._working[order.order_id] = order
        results: list[PaperResult] = []
        kept = self._recent_bars.get(order.symbol, ())
        oldest_kept = kept[0].opened_at if kept else None
        history = [
            bar
            for bar in sorted(earlier_bars, key=lambda item: item.opened_at)
            if bar.symbol == order.symbol and (oldest_kept is None or bar.opened_at < oldest_kept)
        ]
        for bar in [*history, *kept]:
            if bar.opened_at < order.signal_time:
                continue
            if order.order_id in self._working:
                results.extend(self._handle(order, bar))
            bracket = self._brackets.get(order.order_id)
            if bracket is not None:
                results.extend(self._check_bracket(bracket, bar))
            if order.order_id not in self._working and order.order_id not in self._brackets:
                break
        return results

    def on_bar(self, bar: BarClosed) -> list[PaperResult]:
        """Fill the bar's due orders at its open, then let its range trigger bracket legs.

        Each bracket sees each bar once, in time order: a bar redelivered after a restart
        cannot trigger a bracket armed at a later bar.
        """
        self.remember_bar(bar)
        due = [
            order
            for order in self._working.values()
            if order.symbol == bar.symbol and bar.opened_at >= order.signal_time
        ]
        results: list[PaperResult] = []
        for order in due:
            if order.order_id in self._working:
                results.extend(self._handle(order, bar))
        for bracket in [
            item for item in self._brackets.values() if item.entry.symbol == bar.symbol
        ]:
            if bracket.entry.order_id in self._brackets:
                results.extend(self._check_bracket(bracket, bar))
        return results

    def cancel(self, order_id: str, reason: str) -> list[PaperResult]:
        """Cancel a working order (and its bracket if nothing of it filled)."""
        order = self._working.pop(order_id, None)
        if order is None:
            return []
        self._forget(order_id)
        return [PaperCancellation(order, reason)]

    # -- internals ---------------------------------------------------------------------------

    def _handle(self, order: WorkingOrder, bar: BarClosed) -> list[PaperResult]:
        self._working.pop(order.order_id, None)
        result = self._execute(order, bar)
        if result is None:
            self._working[order.order_id] = order
            return []
        if isinstance(result, PaperRejection):
            self._forget(order.order_id)
            return [result]
        results: list[PaperResult] = [result]
        results.extend(self._book(result))
        remaining = order.quantity - self._filled.get(order.order_id, 0.0)
        if remaining >= QUANTITY_EPSILON:
            self._working[order.order_id] = order
        return results

    def _book(self, fill: PaperFill) -> list[PaperResult]:
        order = fill.order
        quantity = fill.filled_quantity
        self._filled[order.order_id] = self._filled.get(order.order_id, 0.0) + quantity
        self._fill_counts[order.order_id] = self._fill_counts.get(order.order_id, 0) + 1
        self._net[order.symbol] = self._net.get(order.symbol, 0.0) + order.side.sign * quantity
        results: list[PaperResult] = []
        if order.is_bracket_leg:
            return results
        # An opposite order of the same strategy closes (or reverses) that strategy's position:
        # its protection no longer fits. Another strategy's order leaves it alone (each
        # strategy's trades are its own, though the account nets them).
        for bracket in list(self._brackets.values()):
            if (
                bracket.entry.symbol == order.symbol
                and bracket.entry.strategy == order.strategy
                and bracket.entry.side is not order.side
            ):
                del self._brackets[bracket.entry.order_id]
                self._bracket_checked.pop(bracket.entry.order_id, None)
                results.extend(
                    PaperCancellation(leg, f"position closed by order {order.order_id}")
                    for leg in bracket.legs
                )
        if order.stop_loss is None and order.take_profit is None:
            return results
        existing = self._brackets.get(order.order_id)
        if existing is None:
            stop, target = bracket_legs(order)
            bracket = Bracket(order, stop, target, self._filled[order.order_id])
            self._brackets[order.order_id] = bracket
            results.append(PaperBracketArmed(order, bracket.legs))
        else:
            self._brackets[order.order_id] = replace(
                existing, protected_quantity=self._filled[order.order_id]
            )
        return results

    def _forget(self, order_id: str) -> None:
        self._filled.pop(order_id, None)

    def _trigger_price(self, order: WorkingOrder, bar: BarClosed) -> float | None:
        """Return the fill price the bar gives the order, or None when it does not trigger."""
        if order.order_type is OrderType.LIMIT and order.limit_price is not None:
            return self._limit_fill(order.side, order.limit_price, bar)
        if order.order_type is OrderType.STOP and order.stop_price is not None:
            return self._stop_fill(order.side, order.stop_price, bar)
        cost = bar.open * (self.config.spread_bps / 2.0 + self.config.slippage_bps) / BASIS_POINTS
        return bar.open + cost if order.side is Side.BUY else bar.open - cost

    def _limit_fill(self, side: Side, limit: float, bar: BarClosed) -> float | None:
        """A limit fills at its price or better once the bar's bid/ask range reaches it."""
        half = self.config.half_spread
        if side is Side.BUY:
            ask_open, ask_low = bar.open + half(bar.open), bar.low + half(bar.low)
            return min(ask_open, limit) if ask_low <= limit else None
        bid_open, bid_high = bar.open - half(bar.open), bar.high - half(bar.high)
        return max(bid_open, limit) if bid_high >= limit else None

    def _stop_fill(self, side: Side, stop: float, bar: BarClosed) -> float | None:
        """A stop becomes a market order once reached: its level (or the gap open) plus slippage."""
        half, slip = self.config.half_spread, self.config.slippage
        if side is Side.BUY:
            ask_open, ask_high = bar.open + half(bar.open), bar.high + half(bar.high)
            if ask_high < stop:
                return None
            level = max(ask_open, stop)
            return level + slip(level)
        bid_open, bid_low = bar.open - half(bar.open), bar.low - half(bar.low)
        if bid_low > stop:
            return None
        level = min(bid_open, stop)
        return level - slip(level)

    def _execute(self, order: WorkingOrder, bar: BarClosed) -> PaperFill | PaperRejection | None:
        """Return the fill (or rejection) the bar gives the order; None leaves it working."""
        price = self._trigger_price(order, bar)
        if price is None:
            return None
        if not order.price_floor <= price <= order.price_ceiling:
            return PaperRejection(
                order,
                f"fill price {price} outside the approved band "
                f"[{order.price_floor}, {order.price_ceiling}]",
            )
        remaining = order.quantity - self._filled.get(order.order_id, 0.0)
        quantity = remaining
        share = self.config.max_volume_share
        if share is not None and bar.volume > 0:
            quantity = min(remaining, share * bar.volume)
        sequence = self._fill_counts.get(order.order_id, 0) + 1
        return PaperFill(
            fill_id=deterministic_id("fill", order.order_id, sequence),
            order=order,
            price=price,
            commission=self.config.commission(quantity, price),
            filled_at=bar.opened_at,
            quantity=quantity,
        )

    def _check_bracket(self, bracket: Bracket, bar: BarClosed) -> list[PaperResult]:
        entry_id = bracket.entry.order_id
        checked = self._bracket_checked.get(entry_id)
        if checked is not None and bar.opened_at <= checked:
            return []
        self._bracket_checked[entry_id] = bar.opened_at
        triggered = self._bracket_trigger(bracket, bar)
        if triggered is None:
            return []
        leg, price = triggered
        del self._brackets[entry_id]
        self._bracket_checked.pop(entry_id, None)
        quantity = bracket.protected_quantity
        sequence = self._fill_counts.get(leg.order_id, 0) + 1
        fill = PaperFill(
            fill_id=deterministic_id("fill", leg.order_id, sequence),
            order=leg,
            price=price,
            commission=self.config.commission(quantity, price),
            filled_at=bar.opened_at,
            quantity=quantity,
        )
        results: list[PaperResult] = [fill]
        results.extend(self._book(fill))
        self._filled.pop(leg.order_id, None)
        name = "stop-loss" if leg is bracket.stop_loss else "take-profit"
        results.extend(
            PaperCancellation(other, f"one-cancels-other: {name} {leg.order_id} filled")
            for other in bracket.legs
            if other is not leg
        )
        if leg.quantity - quantity >= QUANTITY_EPSILON:
            results.append(PaperCancellation(leg, "rest cancelled: the entry filled only in part"))
        if entry_id in self._working:
            entry = self._working.pop(entry_id)
            self._forget(entry_id)
            results.append(PaperCancellation(entry, f"position closed by {name} {leg.order_id}"))
        return results

    def _bracket_trigger(
        self, bracket: Bracket, bar: BarClosed
    ) -> tuple[WorkingOrder, float] | None:
        """Return the leg the bar triggers and its price; the stop when both could have."""
        stop, target = bracket.stop_loss, bracket.take_profit
        if stop is not None and stop.stop_price is not None:
            price = self._stop_fill(stop.side, stop.stop_price, bar)
            if price is not None:
                return stop, price
        if target is not None and target.limit_price is not None:
            price = self._limit_fill(target.side, target.limit_price, bar)
            if price is not None:
                return target, price
        return None


def working_order_from(approval: OrderApproved) -> WorkingOrder:
    """Return the market order an approval authorises (the backtester's view: no bracket)."""
    return WorkingOrder(
        order_id=approval.order_id,
        strategy=approval.strategy,
        symbol=approval.symbol,
        side=approval.side,
        quantity=approval.quantity,
        signal_time=approval.signal_time,
        price_floor=approval.price_floor,
        price_ceiling=approval.price_ceiling,
    )


def entry_order_from(approval: OrderApproved) -> WorkingOrder:
    """Return the full order an approval authorises: type, trigger prices and bracket."""
    return WorkingOrder(
        order_id=approval.order_id,
        strategy=approval.strategy,
        symbol=approval.symbol,
        side=approval.side,
        quantity=approval.quantity,
        signal_time=approval.signal_time,
        price_floor=approval.price_floor,
        price_ceiling=approval.price_ceiling,
        order_type=approval.order_type,
        limit_price=approval.limit_price,
        stop_price=approval.stop_price,
        stop_loss=approval.stop_loss,
        take_profit=approval.take_profit,
    )
