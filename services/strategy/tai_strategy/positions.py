"""What each strategy really holds: positions from fills, orders followed to their outcome.

Pure and synchronous. The strategy service tells it every order it sends and every outcome
it hears of (fills, risk's rejections, terminal order states); strategies never count their
own intents as positions (as NautilusTrader strategies read positions from the cache).

An exit names the entry whose position it closes and asks for exactly what that entry left the
strategy holding: nothing when the entry was refused or expired (the exit is dropped), the
filled part of a partial fill. While an earlier order of the strategy in that symbol has no
known outcome (its fill is still on the way) the exit waits, and is released, with its own
signal time, once every earlier order resolved: the order is the same however late the
outcomes arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tai_core.ids import deterministic_id
from tai_events.market import Timeframe
from tai_events.orders import OrderState, Side
from tai_strategy.base import OrderIntent

_EPSILON = 1e-9


def order_id_for(
    strategy: str, symbol: str, timeframe: Timeframe, signal_time: datetime, side: Side
) -> str:
    """Return the id of a strategy's order: the same decision always gets the same id."""
    return deterministic_id(
        "ord", strategy, symbol, timeframe.value, signal_time.isoformat(), side.value
    )


@dataclass(slots=True)
class TrackedOrder:
    """One order a strategy sent, followed until its outcome is known."""

    order_id: str
    strategy: str
    symbol: str
    side: Side
    reduce_only: bool
    filled: float = 0.0
    resolved: bool = False
    """Terminal (filled, rejected, cancelled or expired): nothing more will fill."""
    final_quantity: float | None = None
    """The filled quantity its terminal state reported, while fills up to it are on the way."""


@dataclass(frozen=True, slots=True)
class PendingExit:
    """An exit waiting for its entry's outcome."""

    strategy: str
    intent: OrderIntent
    timeframe: Timeframe
    signal_time: datetime
    entry_order_id: str


@dataclass(frozen=True, slots=True)
class ExitOrder:
    """An order ready to send: an exit sized from the position held, or a deferred entry."""

    strategy: str
    intent: OrderIntent
    timeframe: Timeframe
    signal_time: datetime


@dataclass
class PositionBook:
    """Positions per (strategy, symbol) from fills; orders per id; exits waiting on entries."""

    positions: dict[tuple[str, str], float] = field(default_factory=dict)
    orders: dict[str, TrackedOrder] = field(default_factory=dict)
    pending_exits: list[PendingExit] = field(default_factory=list)
    applied_fill_ids: set[str] = field(default_factory=set)
    dropped_exits: int = 0
    """Exits not sent because their entry left nothing to close (refused, expired)."""
    max_orders: int = 100_000
    """Orders followed at most; the oldest resolved ones are forgotten beyond it."""

    def held(self, strategy: str, symbol: str) -> float:
        """Return the signed quantity a strategy holds in a symbol (+ long, - short)."""
        return self.positions.get((strategy, symbol), 0.0)

    # -- what the service sends ----------------------------------------------------------------

    def sent(
        self, order_id: str, strategy: str, symbol: str, side: Side, *, reduce_only: bool
    ) -> None:
        """Follow an order the service sent (a redelivered decision is followed once)."""
        if order_id in self.orders:
            return
        self.orders[order_id] = TrackedOrder(order_id, strategy, symbol, side, reduce_only)
        if len(self.orders) > self.max_orders:
            self._forget_oldest_resolved()

    def _forget_oldest_resolved(self) -> None:
        """Drop the oldest resolved orders no exit waits on (bounds memory on long runs).

        An exit only ever names a recent entry (a trade lasts max_holding_bars), so the
        oldest outcomes are never asked for again.
        """
        needed = {pending.entry_order_id for pending in self.pending_exits}
        excess = len(self.orders) - self.max_orders // 2
        for order_id in [
            order_id
            for order_id, order in self.orders.items()
            if order.resolved and order_id not in needed
        ][:excess]:
            del self.orders[order_id]

    @staticmethod
    def depends_on_position(intent: OrderIntent) -> bool:
        """Return True for an order sized from what is held (an exit)."""
        return intent.reduce_only and intent.quantity is None

    def exit_for(
        self, strategy: str, intent: OrderIntent, timeframe: Timeframe, signal_time: datetime
    ) -> ExitOrder | None:
        """Return the exit to send now, or None (it waits for earlier outcomes, or nothing is
        held to close)."""
        entry_id = self._entry_id(strategy, intent, timeframe) or ""
        if self._waits(strategy, intent.symbol):
            self.pending_exits.append(
                PendingExit(strategy, intent, timeframe, signal_time, entry_id)
            )
            return None
        return self._sized(strategy, intent, timeframe, signal_time, entry_id)

    def has_pending(self, strategy: str, symbol: str) -> bool:
        """Return True while an order of the strategy in the symbol waits to be sent."""
        return any(
            pending.strategy == strategy and pending.intent.symbol == symbol
            for pending in self.pending_exits
        )

    def defer(
        self, strategy: str, intent: OrderIntent, timeframe: Timeframe, signal_time: datetime
    ) -> None:
        """Queue an entry behind the strategy's waiting exit in the symbol.

        Risk then decides the exit before the entry, as it would have had the fill been on
        time: an exit decided after a later entry of the other side would find the strategy's
        net position on the wrong side and be refused.
        """
        self.pending_exits.append(PendingExit(strategy, intent, timeframe, signal_time, ""))

    def _waits(self, strategy: str, symbol: str) -> bool:
        """Return True while an order of the strategy in the symbol has no known outcome."""
        if any(
            pending.strategy == strategy and pending.intent.symbol == symbol
            for pending in self.pending_exits
        ):
            return True  # keep their order: an earlier waiting order goes first
        return any(
            not order.resolved and order.strategy == strategy and order.symbol == symbol
            for order in self.orders.values()
        )

    def _sized(
        self,
        strategy: str,
        intent: OrderIntent,
        timeframe: Timeframe,
        signal_time: datetime,
        entry_id: str,
    ) -> ExitOrder | None:
        if not self.depends_on_position(intent):
            return ExitOrder(strategy, intent, timeframe, signal_time)  # a deferred entry
        entry = self.orders.get(entry_id) if entry_id else None
        return self._sized_exit(strategy, intent, timeframe, signal_time, entry)

    def _entry_id(self, strategy: str, intent: OrderIntent, timeframe: Timeframe) -> str | None:
        if intent.entry_signal_time is None:
            return None
        entry_side = Side.BUY if intent.side is Side.SELL else Side.SELL
        return order_id_for(
            strategy, intent.symbol, timeframe, intent.entry_signal_time, entry_side
        )

    def _sized_exit(
        self,
        strategy: str,
        intent: OrderIntent,
        timeframe: Timeframe,
        signal_time: datetime,
        entry: TrackedOrder | None,
    ) -> ExitOrder | None:
        held = self.held(strategy, intent.symbol)
        closes = abs(held)
        if entry is not None:
            # Only what this entry left: another trade's position is not this exit's to close.
            closes = min(closes, entry.filled)
        if closes <= _EPSILON or held * intent.side.sign >= 0:
            self.dropped_exits += 1
            return None
        sized = OrderIntent(
            symbol=intent.symbol,
            side=intent.side,
            quantity=closes,
            reference_price=intent.reference_price,
            confidence=intent.confidence,
            reason=intent.reason,
            target=intent.target,
            reduce_only=True,
            entry_signal_time=intent.entry_signal_time,
        )
        return ExitOrder(strategy, sized, timeframe, signal_time)

    # -- outcomes ------------------------------------------------------------------------------

    def on_fill(
        self, fill_id: str, order_id: str, strategy: str, symbol: str, side: Side, quantity: float
    ) -> list[ExitOrder]:
        """Apply a fill (once per id) to its strategy's position; return exits it released."""
        if fill_id in self.applied_fill_ids:
            return []
        self.applied_fill_ids.add(fill_id)
        key = (strategy, symbol)
        self.positions[key] = self.positions.get(key, 0.0) + side.sign * quantity
        if abs(self.positions[key]) <= _EPSILON:
            del self.positions[key]
        order = self.orders.get(order_id)
        if order is not None:
            order.filled += quantity
            final = order.final_quantity
            if final is not None and order.filled + _EPSILON >= final:
                order.resolved = True
        return self._release()

    def on_order_ended(
        self, order_id: str, state: OrderState, filled_quantity: float | None = None
    ) -> list[ExitOrder]:
        """Mark an order resolved when it reached a terminal state; return exits released."""
        order = self.orders.get(order_id)
        if order is None or not state.is_terminal:
            return []
        # a terminal state may overtake its fills: wait for them to know the position
        if filled_quantity is not None and order.filled + _EPSILON < filled_quantity:
            order.final_quantity = filled_quantity
            return []
        order.resolved = True
        return self._release()

    def _release(self) -> list[ExitOrder]:
        if not self.pending_exits:
            return []
        released: list[ExitOrder] = []
        waiting: list[PendingExit] = []
        for pending in self.pending_exits:
            key = (pending.strategy, pending.intent.symbol)
            if any((waiter.strategy, waiter.intent.symbol) == key for waiter in waiting) or any(
                not order.resolved and (order.strategy, order.symbol) == key
                for order in self.orders.values()
            ):
                waiting.append(pending)
                continue
            exit_order = self._sized(
                pending.strategy,
                pending.intent,
                pending.timeframe,
                pending.signal_time,
                pending.entry_order_id,
            )
            if exit_order is not None:
                released.append(exit_order)
                # what it sends is itself an order to wait for before the next one
                self.sent(
                    order_id_for(
                        exit_order.strategy,
                        exit_order.intent.symbol,
                        exit_order.timeframe,
                        exit_order.signal_time,
                        exit_order.intent.side,
                    ),
                    exit_order.strategy,
                    exit_order.intent.symbol,
                    exit_order.intent.side,
                    reduce_only=exit_order.intent.reduce_only,
                )
        self.pending_exits = waiting
        return released
