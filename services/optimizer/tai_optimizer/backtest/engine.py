"""Event-driven backtester: the live strategy, risk engine and paper broker in a loop over bars.

Nothing is serialised: each bar goes to the strategy; the orders it calls for are requested from
the risk engine when the symbol's next bar arrives, and the broker fills them at that bar's open.
The strategy sees bars only (never fills or the book), so it takes them all in one pass and the
replay then visits the bars where the engine has work: every bar when brackets or a sizer watch
them, else only the signal bars and the bars their orders fill at.
The risk engine is the live one; only its signer differs (``BacktestApprovalSigner``: a keyed
BLAKE2b tag with a per-run secret instead of an Ed25519 signature, which nothing in one process
needs to verify with a public key), so approvals are the live approvals but for the tag.
Positions, cash and P&L live in the shared ``tai_core.accounting.Account``. One or many
symbols: bars are processed in the given order, which must be by time (ties in any fixed
symbol order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter

import pandas as pd

from tai_core.accounting import QUANTITY_EPSILON, Account
from tai_core.clock import FakeClock
from tai_core.ids import deterministic_id
from tai_events.market import BarClosed
from tai_events.orders import OrderRequested, OrderType, Side, SignalDirection
from tai_events.risk import TradingState
from tai_execution.paper import PaperFill, PaperRejection, working_order_from
from tai_ingestion.bars import BarAggregator
from tai_optimizer.backtest.broker import BacktestBroker, Bracket, ExitReason, bracket_trigger
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.signing import BacktestApprovalSigner
from tai_optimizer.backtest.sizing import Sizer, SizingContext, TradeRecord
from tai_optimizer.backtest.tape import BarFeed, BarTape, BookAfterFill
from tai_quant.trades import ClosedTrade, TradeLedger
from tai_risk.breakers import BreakerSettings, CircuitBreakers
from tai_risk.checks import RiskLimits
from tai_risk.desk import StateChange, TradingDesk
from tai_risk.engine import RiskEngine
from tai_risk.state import PortfolioState, TradingStateMachine
from tai_strategy.base import MultiTimeframe, OrderIntent, Strategy

_RESEARCH_WIDE_LIMITS: dict[str, object] = {
    "max_position_notional_pct": 1000.0,
    "max_open_positions": 1_000,
    "max_price_deviation_pct": 1e9,
    "fill_price_tolerance_pct": 99.0,
    "approval_ttl_seconds": 7 * 86_400.0,
    "max_risk_per_trade_pct": 100.0,
    "style_risk_caps_pct": {"scalping": 100.0, "intraday": 100.0, "swing": 100.0},
    "max_gross_leverage": 1e6,
    "max_margin_utilisation_pct": 100.0,
    "max_correlated_exposure_pct": 1e9,
    "max_var_pct": 1e9,
    "max_cvar_pct": 1e9,
    "max_orders_per_minute": 1_000_000_000,
    "stale_after_bars": 1_000_000_000,
    "require_market_data": False,
}
"""Research-wide values of every limit the risk engine has had; only those it knows are set."""

BACKTEST_RISK_LIMITS = RiskLimits.model_validate(
    {
        name: value
        for name, value in _RESEARCH_WIDE_LIMITS.items()
        if name in RiskLimits.model_fields
    }
)
"""Wide limits (position notional up to 10x equity, no portfolio VaR or exposure caps): a
research run measures the strategy, not the live risk budget. Pass tighter RiskLimits to see
what live risk would refuse."""


_HAS_INTENTS = itemgetter(1)
"""Of (bar index, intents): the intents, truthy when there are any."""
# Module constants: enum attribute lookups (and Side.sign) are slow on Python 3.11.
_BUY, _SELL = Side.BUY, Side.SELL
_SIGN = {Side.BUY: 1, Side.SELL: -1}
_LONG, _FLAT = SignalDirection.LONG, SignalDirection.FLAT
_MARKET = OrderType.MARKET


@dataclass(frozen=True)
class BacktestConfig:
    """How a backtest trades: starting cash, costs, sizing, leverage and risk limits."""

    cash: float = 100_000.0
    costs: CostModel = field(default_factory=CostModel)
    sizer: Sizer | None = None
    """None trades the strategy's own quantities, exactly as the live services do."""
    leverage: float = 1.0
    """Buying power per unit of equity (FX margin 3.33 % = leverage 30)."""
    limits: RiskLimits = BACKTEST_RISK_LIMITS
    trading_state: TradingState = TradingState.ACTIVE
    breakers: BreakerSettings | None = None
    """Run the live circuit breakers (daily loss, drawdown, losing streak, volatility) through
    the risk service's own TradingDesk; None (research runs) trades without them."""
    risk_sees_bars: bool | None = None
    """Feed every bar to the risk engine's market history, as the live risk service gets
    them: its stale-data, ATR stop, volatility, correlation and VaR checks need it. None (the
    default) feeds them exactly when ``limits`` are not the research-wide defaults, under
    which those checks cannot bind (and a sweep skips the cost)."""

    @property
    def feeds_risk_market_data(self) -> bool:
        """Return True when the risk engine is to see every bar."""
        if self.risk_sees_bars is not None:
            return self.risk_sees_bars
        return self.limits != BACKTEST_RISK_LIMITS

    def __post_init__(self) -> None:
        if not self.cash > 0:
            raise ValueError("cash must be positive")
        if not self.leverage >= 1.0:
            raise ValueError("leverage must be at least 1")


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution: an order's (or a bracket leg's) fill."""

    order_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    commission: float
    filled_at: datetime
    bar_index: int
    reason: ExitReason


@dataclass(frozen=True, slots=True)
class Rejection:
    """An order that did not trade, who refused it and why."""

    order_id: str
    symbol: str
    stage: str
    """``risk`` or ``broker``."""
    rule: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class BacktestResult:
    """Everything a run produced."""

    initial_cash: float
    equity: pd.Series
    """Equity marked at each bar's close, indexed by the bar's open time (as the CSV)."""
    fills: list[Fill]
    trades: list[ClosedTrade]
    rejections: list[Rejection]
    final_positions: dict[str, float]
    bar_count: int
    state_changes: list[tuple[datetime, StateChange]] = field(default_factory=list)
    """The trading-state transitions the circuit breakers made, at market time."""

    @property
    def final_equity(self) -> float:
        """Return the equity after the last bar."""
        return float(self.equity.iloc[-1]) if len(self.equity) else self.initial_cash


@dataclass(slots=True)
class _PendingIntent:
    intent: OrderIntent
    signal_bar: BarClosed
    sequence: int


class EventDrivenBacktester:
    """Runs one strategy over bars with the live risk engine and paper broker."""

    def __init__(self, strategy: Strategy, config: BacktestConfig | None = None) -> None:
        self.strategy = strategy
        self.config = config or BacktestConfig()

    def run(self, bars: Sequence[BarClosed]) -> BacktestResult:
        """Replay the bars and return the fills, trades and equity curve.

        A ``BarFeed`` brings its tape (times and closes) along; other sequences are tabulated
        first, at one pass per column.
        """
        return _Run(self.strategy, self.config).run(bars)


class _Run:
    """The mutable state of one run (never reused)."""

    def __init__(self, strategy: Strategy, config: BacktestConfig) -> None:
        self.strategy = strategy
        self.config = config
        start = datetime(1970, 1, 1, tzinfo=UTC)
        self.clock = FakeClock(start)
        # A per-run secret: approvals are really tagged, and the secret dies with the run.
        self.signer = BacktestApprovalSigner()
        self.risk = RiskEngine(config.limits, self.signer, self.clock)
        self.portfolio = PortfolioState(equity=config.cash)
        self.broker = BacktestBroker(config.costs)
        self.account = Account.opened_with(config.cash)
        self.marks: dict[str, float] = {}
        self.tape = BarTape.of(())
        self.ledger = TradeLedger()
        self.record = TradeRecord()
        self.fills: list[Fill] = []
        self.books: list[BookAfterFill] = []
        self.rejections: list[Rejection] = []
        self.pending: dict[str, list[_PendingIntent]] = {}
        self.sequence = 0
        self.desk = (
            None
            if config.breakers is None
            else TradingDesk(
                CircuitBreakers(config.breakers, peak_equity=config.cash), TradingStateMachine()
            )
        )
        self.state_changes: list[tuple[datetime, StateChange]] = []

    def run(self, bars: Sequence[BarClosed]) -> BacktestResult:
        # Everything that is a pure function of the bars (time order, closes per symbol, the
        # time index) is computed once, vectorised (once per data set with a BarFeed); the loop
        # only does what depends on the strategy's decisions.
        if isinstance(bars, BarFeed):  # a loaded data set: its tape is already tabulated
            tape = bars.tape
            bars = bars.bars
        else:
            tape = BarTape.of(bars)
        self.tape = tape
        # A strategy sees bars and nothing else (the Strategy protocol: no fills, no book), so
        # its decisions do not depend on when orders execute: it takes every bar in one pass,
        # iterated in C, and the replay below visits the bars where the engine has work. Only
        # the bars with intents are kept: an empty list per bar kept alive would wake the
        # garbage collector over the whole heap.
        signals: dict[int, list[OrderIntent]] = dict(
            filter(_HAS_INTENTS, enumerate(map(self._strategy_step(), bars)))
        )
        if self._needs_every_bar(tape, signals):
            self._replay_every_bar(bars, signals)
        else:
            self._replay_signals(bars, signals)
        return self._result(bars, tape)

    def _strategy_step(self) -> Callable[[BarClosed], list[OrderIntent]]:
        """Return what takes one bar to the strategy: its on_bar, plus, for a strategy that
        reads higher timeframes, the higher bars it completes (built as ingestion builds them,
        handed over right after it, as the service's queue delivers them)."""
        strategy = self.strategy
        if not isinstance(strategy, MultiTimeframe):
            return strategy.on_bar
        aggregators: dict[str, list[BarAggregator]] = {}
        multi: MultiTimeframe = strategy

        def step(bar: BarClosed) -> list[OrderIntent]:
            intents = strategy.on_bar(bar)
            builders = aggregators.get(bar.symbol)
            if builders is None:
                builders = aggregators[bar.symbol] = [
                    BarAggregator(bar.symbol, timeframe, source=bar.source)
                    for timeframe in multi.higher_timeframes
                    if timeframe.duration > bar.timeframe.duration
                ]
            for builder in builders:
                for higher in builder.on_bar(bar):
                    multi.on_higher_bar(higher)
            return intents

        return step

    def _needs_every_bar(self, tape: BarTape, signals: dict[int, list[OrderIntent]]) -> bool:
        """Return True unless orders are the only work: one symbol, no brackets, no sizer
        that watches bars."""
        sizer = self.config.sizer
        if (sizer is not None and sizer.observes_bars) or len(tape.symbols) > 1:
            return True
        if self.config.feeds_risk_market_data or self.desk is not None:
            return True
        return any(
            intent.stop_loss or intent.take_profit
            for intents in signals.values()
            for intent in intents
        )

    def _replay_every_bar(
        self, bars: Sequence[BarClosed], signals: dict[int, list[OrderIntent]]
    ) -> None:
        """Replay bar by bar: due orders at the open, then brackets, the sizer and new signals."""
        sizer = self.config.sizer
        observe = sizer.observe if sizer is not None and sizer.observes_bars else None
        # Risk sees a bar once it closed, so the orders it fills (at the next bar's open) are
        # judged on the market up to their signal bar, as in the live service.
        market = self.portfolio.market.on_bar if self.config.feeds_risk_market_data else None
        pending = self.pending
        brackets = self.broker.brackets
        for index, bar in enumerate(bars):
            if pending and bar.symbol in pending:
                self._execute_pending(bar, index, pending.pop(bar.symbol))
            if brackets and bar.symbol in brackets:
                self._check_bracket(brackets[bar.symbol], bar, index)
            if observe is not None:
                observe(bar)
            if market is not None:
                market(bar)
            if self.desk is not None:
                self._watch_breakers(bar, index)
            intents = signals.get(index)
            if intents:
                self._queue(bar, intents)

    def _replay_signals(
        self, bars: Sequence[BarClosed], signals: dict[int, list[OrderIntent]]
    ) -> None:
        """Replay only the signal bars and the bars after them, where their orders execute.

        For one symbol without brackets or a watching sizer nothing else happens between
        signals, so this is the bar-by-bar replay with the idle bars left out.
        """
        count = len(bars)
        pending = self.pending
        for index, intents in signals.items():  # in bar order: filled in by enumerate
            bar = bars[index]
            self._queue(bar, intents)
            following = index + 1
            if following < count:  # else the orders stay pending, as bar by bar
                self._execute_pending(bars[following], following, pending.pop(bar.symbol))

    def _watch_breakers(self, bar: BarClosed, index: int) -> None:
        """Let the desk see the bar's close with the equity marked at it (as live risk does)."""
        if self.desk is None:
            return
        marks = {**self.tape.marks_before(index), bar.symbol: bar.close}
        market = self.portfolio.market.symbols.get(bar.symbol)
        changes = self.desk.on_market(
            bar.closed_at,
            self.account.equity(marks),
            symbol=bar.symbol if market is not None else None,
            atr=market.atr_value if market is not None else None,
            atr_baseline=market.atr_baseline if market is not None else None,
        )
        self.state_changes.extend((bar.closed_at, change) for change in changes)

    def _queue(self, bar: BarClosed, intents: list[OrderIntent]) -> None:
        """Hold a bar's intents until the symbol's next bar, where they execute."""
        queue = self.pending.setdefault(bar.symbol, [])
        for intent in intents:
            self.sequence += 1
            queue.append(_PendingIntent(intent, bar, self.sequence))

    # -- orders ---------------------------------------------------------------------------

    def _execute_pending(self, bar: BarClosed, index: int, queue: list[_PendingIntent]) -> None:
        self.marks = self.tape.marks_before(index)
        self.clock.set(max(bar.opened_at, self.clock.now()))
        self.broker.remember_bar(bar)
        for item in queue:
            symbol = item.intent.symbol
            # Marked at this bar's open, where the order fills: sizing, risk and margin all
            # look at the book through the same marks (built once per order).
            marks = {**self.marks, symbol: bar.open}
            side, quantity = self._order_for(item.intent, bar, marks)
            if quantity is not None and quantity <= QUANTITY_EPSILON:
                continue
            self._request(item, side, quantity, bar, index, marks)

    def _order_for(
        self, intent: OrderIntent, bar: BarClosed, marks: dict[str, float]
    ) -> tuple[Side, float | None]:
        """Return the order's side and quantity; None leaves sizing to risk (an intent)."""
        sizer = self.config.sizer
        if intent.reduce_only:
            # an exit closes exactly what is held (nothing when the entry was refused)
            held = self.account.position(intent.symbol).quantity
            if abs(held) <= QUANTITY_EPSILON or (held > 0) == (intent.side is _BUY):
                return intent.side, 0.0
            return intent.side, abs(held)
        if sizer is None:
            return intent.side, intent.quantity
        target_direction = intent.target
        if target_direction is None:
            return intent.side, sizer.units(
                self._sizing_context(intent.symbol, intent.side, bar, marks)
            )
        position = self.account.position(intent.symbol).quantity
        if target_direction is _FLAT:
            target = 0.0
        elif target_direction is _LONG:
            target = sizer.units(self._sizing_context(intent.symbol, _BUY, bar, marks))
        else:
            target = -sizer.units(self._sizing_context(intent.symbol, _SELL, bar, marks))
        change = target - position
        return (_BUY if change > 0 else _SELL), abs(change)

    def _sizing_context(
        self, symbol: str, side: Side, bar: BarClosed, marks: dict[str, float]
    ) -> SizingContext:
        costs = self.config.costs
        price = costs.fill_price(_SIGN[side], bar.open)
        account = self.account
        position = account.position(symbol).quantity
        # Size as if the symbol's position were closed first at this bar (a reversal).
        closing = 0.0
        if abs(position) > QUANTITY_EPSILON:
            exit_side = -1 if position > 0 else 1
            closing = costs.commission(position, costs.fill_price(exit_side, bar.open))
        equity = account.equity(marks) - closing
        other_margin = (
            sum(
                abs(held.quantity) * marks.get(name, held.average_price)
                for name, held in account.positions.items()
                if name != symbol and not held.is_flat
            )
            / self.config.leverage
        )
        return SizingContext(
            symbol=symbol,
            price=price,
            equity=equity,
            available_margin=max(0.0, equity - other_margin),
            leverage=self.config.leverage,
            costs=costs,
            record=self.record,
        )

    def _request(
        self,
        item: _PendingIntent,
        side: Side,
        quantity: float | None,
        bar: BarClosed,
        index: int,
        marks: dict[str, float],
    ) -> None:
        intent, signal_bar = item.intent, item.signal_bar
        order_id = deterministic_id(
            "ord",
            self.strategy.name,
            intent.symbol,
            signal_bar.closed_at.isoformat(),
            item.sequence,
        )
        request = OrderRequested(
            order_id=order_id,
            strategy=self.strategy.name,
            symbol=intent.symbol,
            side=side,
            quantity=quantity,
            reference_price=intent.reference_price,
            signal_time=signal_bar.closed_at,
            requested_at=self.clock.now(),
            order_type=_MARKET,
            stop_loss=intent.stop_loss,
            take_profit=intent.take_profit,
            confidence=intent.confidence,
            win_probability=intent.win_probability,
            style=intent.style,
            risk_budget_pct=intent.risk_budget_pct if quantity is None else None,
            reduce_only=intent.reduce_only,
            reason=intent.reason[:2000],
        )
        portfolio = self.portfolio
        equity = self.account.equity(marks)
        portfolio.equity = equity
        portfolio.last_prices[intent.symbol] = signal_bar.close
        state = self.desk.state if self.desk is not None else self.config.trading_state
        decision = self.risk.check(request, portfolio, state)
        portfolio.decided_order_ids.add(order_id)
        portfolio.record_request(request.strategy, request.signal_time)  # the order-rate limit
        if decision.approval is None:
            rejection = decision.rejection
            self.rejections.append(
                Rejection(
                    order_id,
                    intent.symbol,
                    "risk",
                    rejection.rule if rejection else "unknown",
                    rejection.reason if rejection else "",
                    bar.opened_at,
                )
            )
            return
        quantity = decision.approval.quantity
        if not self._margin_allows(intent.symbol, side, quantity, bar, marks, equity):
            self.rejections.append(
                Rejection(
                    order_id,
                    intent.symbol,
                    "broker",
                    "margin",
                    "insufficient margin",
                    bar.opened_at,
                )
            )
            return
        outcome = self.broker.submit(working_order_from(decision.approval))
        if isinstance(outcome, PaperFill):
            self._apply(outcome, index, ExitReason.SIGNAL)
            approval = decision.approval
            position = self.account.position(intent.symbol).quantity
            if (approval.stop_loss or approval.take_profit) and abs(position) > QUANTITY_EPSILON:
                self.broker.brackets[intent.symbol] = Bracket(
                    symbol=intent.symbol,
                    direction=1 if position > 0 else -1,
                    stop_loss=approval.stop_loss,
                    take_profit=approval.take_profit,
                    entry_order_id=order_id,
                )  # checked against this very bar by the loop, right after this returns
        elif isinstance(outcome, PaperRejection):
            self.rejections.append(
                Rejection(
                    order_id,
                    intent.symbol,
                    "broker",
                    "fill_price_band",
                    outcome.reason,
                    bar.opened_at,
                )
            )
        # Risk projects approved orders; the book is what actually filled.
        self._project(intent.symbol)

    def _project(self, symbol: str) -> None:
        """Set risk's projected positions (the account's and the strategy's) to the book."""
        held = self.account.position(symbol).quantity
        self.portfolio.projected_positions[symbol] = held
        self.portfolio.strategy_positions[(self.strategy.name, symbol)] = held

    def _margin_allows(
        self,
        symbol: str,
        side: Side,
        quantity: float,
        bar: BarClosed,
        marks: dict[str, float],
        equity: float,
    ) -> bool:
        """Return True when equity (``equity``: the book at ``marks``) pays for the order."""
        position = self.account.position(symbol).quantity
        sign = _SIGN[side]
        after = position + sign * quantity
        if abs(after) <= abs(position) + QUANTITY_EPSILON:
            return True  # reducing never needs margin
        price = self.config.costs.fill_price(sign, bar.open)
        commission = self.config.costs.commission(quantity, price)
        needed = math_fsum_notional(self.account, marks, symbol, after, price)
        return needed / self.config.leverage <= (equity - commission) * (1 + 1e-12)

    def _check_bracket(self, bracket: Bracket, bar: BarClosed, index: int) -> None:
        trigger = bracket_trigger(bracket, bar)
        if trigger is None:
            return
        position = self.account.position(bracket.symbol).quantity
        if abs(position) <= QUANTITY_EPSILON or (position > 0) != (bracket.direction > 0):
            self.broker.brackets.pop(bracket.symbol, None)
            return
        fill = self.broker.exit_fill(trigger, abs(position), bar)
        self._apply(fill, index, trigger.reason)
        self._project(bracket.symbol)

    def _apply(self, fill: PaperFill, index: int, reason: ExitReason) -> None:
        order = fill.order
        signed = _SIGN[order.side] * order.quantity
        marks = {**self.tape.marks_before(index), order.symbol: fill.price}
        equity_before = self.account.equity(marks) if self.desk is not None else 0.0
        self.account, position, realized = self.account.apply_fill(
            order.symbol, signed, fill.price, fill.commission
        )
        if self.desk is not None:
            changes = self.desk.on_fill(
                fill.filled_at, realized, equity_before, self.account.equity(marks)
            )
            self.state_changes.extend((fill.filled_at, change) for change in changes)
        self.books.append(BookAfterFill(index, order.symbol, self.account.cash, position.quantity))
        record = Fill(
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            price=fill.price,
            commission=fill.commission,
            filled_at=fill.filled_at,
            bar_index=index,
            reason=reason,
        )
        self.fills.append(record)
        closed = self.ledger.apply(
            record.symbol,
            signed,
            record.price,
            record.commission,
            time=record.filled_at,
            bar=index,
            reason=reason,
        )
        for trade in closed:
            self.record = self.record.with_trade(trade.pnl)

    # -- results --------------------------------------------------------------------------

    def _result(self, bars: Sequence[BarClosed], tape: BarTape) -> BacktestResult:
        return BacktestResult(
            initial_cash=self.config.cash,
            equity=tape.equity(self.books, self.config.cash),
            fills=self.fills,
            trades=self.ledger.closed,
            rejections=self.rejections,
            final_positions={
                name: held.quantity
                for name, held in self.account.positions.items()
                if not held.is_flat
            },
            bar_count=len(bars),
            state_changes=self.state_changes,
        )


def math_fsum_notional(
    account: Account, marks: dict[str, float], symbol: str, quantity_after: float, price: float
) -> float:
    """Return the gross notional of the book if ``symbol`` held ``quantity_after`` at price."""
    total = abs(quantity_after) * price
    for name, held in account.positions.items():
        if name != symbol and not held.is_flat:
            total += abs(held.quantity) * marks.get(name, held.average_price)
    return total
