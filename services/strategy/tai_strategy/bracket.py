"""Shared machinery of the ATR-bracketed strategies: sizing, stops, targets and trade tracking.

A bracketed strategy opens a position with one order carrying an ATR stop-loss and take-profit,
then holds it (no new entries) until, by its own view of the bars, the stop or the target was
touched — with the same conservative rule as the backtest broker (the stop when both could
have hit) — or until ``max_holding_bars`` pass, when it asks to close; it never re-enters on
the bar that ended a trade.

The strategy does not size its entries: each states its style and risk budget
(``risk_per_trade_pct`` x the regime weight the strategy book assigns) and risk turns that
into a quantity from the live account. Its exits are reduce-only and name the entry they
close; the strategy service asks for exactly what that entry left it holding (nothing, when
risk refused the entry). Its decisions depend on the bars alone, so a replay gives the same
orders on any transport, however late the fills arrive.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tai_events.market import BarClosed
from tai_events.orders import Side, SignalDirection, TradingStyle
from tai_quant.indicators import AverageTrueRange
from tai_strategy.base import OrderIntent


class BracketParameters(BaseModel):
    """Sizing and exit parameters every bracketed strategy shares (subclasses set defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    RISK_RANGE_PCT: ClassVar[tuple[float, float]] = (0.0, 100.0)
    """The documented risk-per-trade band of the strategy family; validated on every change."""
    STYLE: ClassVar[TradingStyle | None] = None
    """The trading style risk caps this family's risk per trade by."""

    risk_per_trade_pct: float = Field(
        default=1.0, gt=0, description="share of equity lost when the stop is hit (risk sizes)"
    )
    atr_period: int = Field(default=14, ge=1, le=500, description="ATR length in bars")
    stop_atr: float = Field(default=2.0, gt=0, description="stop-loss distance in ATRs")
    take_profit_atr: float = Field(default=3.0, gt=0, description="take-profit distance in ATRs")
    max_holding_bars: int = Field(
        default=0, ge=0, description="close after this many bars in a trade; 0 = never"
    )

    @model_validator(mode="after")
    def _risk_in_band(self) -> Self:
        low, high = self.RISK_RANGE_PCT
        if not low <= self.risk_per_trade_pct <= high:
            raise ValueError(
                f"risk_per_trade_pct {self.risk_per_trade_pct} is outside this strategy's "
                f"band [{low}, {high}] %"
            )
        return self


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's wish to enter: direction, confidence, why, and a win probability if known."""

    direction: SignalDirection
    confidence: float
    reason: str
    win_probability: float | None = None


@dataclass(slots=True)
class OpenTrade:
    """The strategy's model of a trade it asked for: when it entered and where it exits.

    It times the trade from the bars; what the trade really holds comes from its fills (the
    strategy service's PositionBook).
    """

    direction: SignalDirection
    entry_reference: float
    stop_loss: float
    take_profit: float
    entry_signal_time: datetime
    bars_held: int = 0


def risk_budget_pct(parameters: BracketParameters, weight: float) -> float:
    """Return the trade's risk budget: ``risk_per_trade_pct`` scaled by the regime weight."""
    return parameters.risk_per_trade_pct * weight if weight > 0 else 0.0


def protective_levels(
    direction: SignalDirection, price: float, atr_value: float, parameters: BracketParameters
) -> tuple[float, float]:
    """Return (stop-loss, take-profit) ``stop_atr`` / ``take_profit_atr`` ATRs from price."""
    sign = 1.0 if direction is SignalDirection.LONG else -1.0
    stop = price - sign * parameters.stop_atr * atr_value
    target = price + sign * parameters.take_profit_atr * atr_value
    return stop, target


def exit_touched(trade: OpenTrade, bar: BarClosed) -> str | None:
    """Return "stop-loss" or "take-profit" when the bar reached one (stop first), else None."""
    if trade.direction is SignalDirection.LONG:
        if bar.low <= trade.stop_loss:
            return "stop-loss"
        if bar.high >= trade.take_profit:
            return "take-profit"
        return None
    if bar.high >= trade.stop_loss:
        return "stop-loss"
    if bar.low <= trade.take_profit:
        return "take-profit"
    return None


@dataclass(slots=True)
class _SymbolBook:
    atr: AverageTrueRange
    indicators: Any
    last_opened_at: datetime | None = None
    trade: OpenTrade | None = None
    weight: float = 1.0


P = TypeVar("P", bound=BracketParameters)


class BracketStrategy(Generic[P]):
    """Base of the ATR-bracketed strategies; subclasses supply indicators and the entry rule."""

    name: str
    parameters_type: ClassVar[type[BracketParameters]]

    def __init__(self, parameters: P) -> None:
        self.parameters = parameters
        self._symbols: dict[str, _SymbolBook] = {}

    # -- what subclasses implement ---------------------------------------------------------

    @abstractmethod
    def _new_indicators(self) -> Any:
        """Return a fresh per-symbol indicator state."""

    @abstractmethod
    def _update(self, indicators: Any, bar: BarClosed) -> Signal | None:
        """Feed one bar to the indicators and return an entry signal, if any."""

    # -- shared behaviour ------------------------------------------------------------------

    def _book(self, symbol: str) -> _SymbolBook:
        book = self._symbols.get(symbol)
        if book is None:
            book = _SymbolBook(AverageTrueRange(self.parameters.atr_period), self._new_indicators())
            self._symbols[symbol] = book
        return book

    def set_weight(self, symbol: str, weight: float) -> None:
        """Scale the symbol's future entries (the book's weight for the current regime)."""
        if not weight >= 0:
            raise ValueError(f"weight must be non-negative, got {weight}")
        self._book(symbol).weight = weight

    def open_trade(self, symbol: str) -> OpenTrade | None:
        """Return the trade the strategy believes is open on a symbol, if any."""
        book = self._symbols.get(symbol)
        return book.trade if book else None

    def _advance(self, bar: BarClosed) -> tuple[_SymbolBook, Signal | None, float | None] | None:
        book = self._book(bar.symbol)
        if book.last_opened_at is not None and bar.opened_at <= book.last_opened_at:
            return None  # a redelivered or out-of-order bar: never trade it twice
        book.last_opened_at = bar.opened_at
        atr_value = book.atr.update(bar.high, bar.low, bar.close)
        signal = self._update(book.indicators, bar)
        return book, signal, atr_value

    def warm_up(self, bar: BarClosed) -> None:
        """Replay a historical bar exactly as live, dropping the orders it calls for.

        The decisions depend on the bars alone, so after a restart the replay rebuilds the
        trades the strategy was timing (their entries and exits are in the ledger already).
        """
        self.on_bar(bar)

    def on_bar(self, bar: BarClosed) -> list[OrderIntent]:
        """Manage the open trade (exits), else enter on a fresh signal when flat."""
        advanced = self._advance(bar)
        if advanced is None:
            return []
        book, signal, atr_value = advanced
        trade = book.trade
        if trade is not None:
            trade.bars_held += 1
            touched = exit_touched(trade, bar)
            # No re-entry on the bar that ended a trade: wait for a fresh bar's signal.
            if touched is not None:
                book.trade = None  # the broker's bracket closed it
                return []
            if self.parameters.max_holding_bars and (
                trade.bars_held >= self.parameters.max_holding_bars
            ):
                book.trade = None
                return [self._close(bar, trade)]
            return []
        if signal is None or atr_value is None or not atr_value > 0:
            return []
        intent = self._enter(bar, book, signal, atr_value)
        return [intent] if intent is not None else []

    def enter(self, bar: BarClosed, signal: Signal) -> list[OrderIntent]:
        """Enter on an externally produced signal at the last bar (used by predictions)."""
        book = self._book(bar.symbol)
        atr_value = book.atr.value
        if book.trade is not None or atr_value is None or not atr_value > 0:
            return []
        intent = self._enter(bar, book, signal, atr_value)
        return [intent] if intent is not None else []

    def _enter(
        self, bar: BarClosed, book: _SymbolBook, signal: Signal, atr_value: float
    ) -> OrderIntent | None:
        parameters = self.parameters
        stop, target = protective_levels(signal.direction, bar.close, atr_value, parameters)
        budget = round(risk_budget_pct(parameters, book.weight), 6)
        if not budget > 0 or stop == bar.close:
            return None
        book.trade = OpenTrade(signal.direction, bar.close, stop, target, bar.closed_at)
        long = signal.direction is SignalDirection.LONG
        return OrderIntent(
            symbol=bar.symbol,
            side=Side.BUY if long else Side.SELL,
            quantity=None,
            reference_price=bar.close,
            confidence=round(min(1.0, max(0.0, signal.confidence)), 6),
            reason=(
                f"{self.name} {'long' if long else 'short'}: {signal.reason}; "
                f"stop {stop:.6g} ({parameters.stop_atr:g} ATR), "
                f"target {target:.6g} ({parameters.take_profit_atr:g} ATR), "
                f"ATR({parameters.atr_period}) {atr_value:.6g}, "
                f"risk {parameters.risk_per_trade_pct:g}% x weight {book.weight:g}"
            ),
            stop_loss=stop,
            take_profit=target,
            target=signal.direction,
            risk_budget_pct=budget,
            style=parameters.STYLE,
            win_probability=signal.win_probability,
        )

    def _close(self, bar: BarClosed, trade: OpenTrade) -> OrderIntent:
        long = trade.direction is SignalDirection.LONG
        return OrderIntent(
            symbol=bar.symbol,
            side=Side.SELL if long else Side.BUY,
            quantity=None,
            reference_price=bar.close,
            confidence=1.0,
            reason=(
                f"{self.name} exit: {'long' if long else 'short'} held "
                f"{trade.bars_held} bars (max_holding_bars) at close {bar.close}"
            ),
            target=SignalDirection.FLAT,
            reduce_only=True,
            entry_signal_time=trade.entry_signal_time,
        )

    def adopt_trades(self, other: BracketStrategy[Any]) -> None:
        """Take over another instance's open trades (after a re-parameterisation)."""
        for symbol, book in other._symbols.items():
            if book.trade is not None:
                self._book(symbol).trade = book.trade
