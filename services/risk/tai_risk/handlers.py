"""Bus <-> risk glue: one small function per message type; decisions stay in the engine.

Every handler runs under the context's lock (risk is one logical actor) and claims its message
in the inbox inside the transaction that records its effects. Before claiming, it compares the
number of messages risk has handled in the ledger with the number this process handled: a
difference means another risk process (the previous active consumer of the single-active-
consumer queues) decided meanwhile, so the state is rebuilt from the ledger first.
"""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import func, select

from tai_bus.api import MessageBus
from tai_core.accounting import Account
from tai_core.clock import Clock
from tai_core.ids import deterministic_id
from tai_core.signing import UNSIGNED_KEY_ID, UNSIGNED_SIGNATURE
from tai_events.alerts import AlertRaised, Severity
from tai_events.base import Message
from tai_events.codec import Envelope, make_headers
from tai_events.control import FlattenPositions, HaltTrading, ResumeTrading
from tai_events.headers import MessageHeaders
from tai_events.market import BarClosed, Timeframe
from tai_events.orders import (
    FillExecuted,
    OrderApproved,
    OrderRequested,
    OrderState,
    OrderStatusChanged,
    Side,
    SizingConstraint,
)
from tai_events.risk import RiskStateChanged, TradingState
from tai_risk.breakers import (
    BREAKER_ACTOR_PREFIX,
    SESSION_BREAKERS,
    CircuitBreakers,
)
from tai_risk.desk import StateChange, TradingDesk
from tai_risk.engine import Decision, RiskEngine
from tai_risk.metrics import RiskMetrics
from tai_risk.state import PortfolioState, TradingStateMachine
from tai_store import Store, UnitOfWork
from tai_store.models import OhlcvRow, ProcessedMessageRow
from tai_store.outbox import OutboxRelay
from tai_store.records import Order
from tai_telemetry.tracing import inject_traceparent

CONSUMER = "risk"
RECONCILIATION_FAILED = "reconciliation_failed"
"""Alert code execution raises when the broker's book and the ledger disagree."""
RELEASING_STATES = (OrderState.CANCELLED, OrderState.EXPIRED, OrderState.REJECTED)


@dataclass
class RiskContext:
    """Everything the risk handlers touch."""

    engine: RiskEngine
    portfolio: PortfolioState
    trading: TradingStateMachine
    account: Account
    store: Store
    bus: MessageBus
    relay: OutboxRelay
    clock: Clock
    account_name: str
    breakers: CircuitBreakers
    metrics: RiskMetrics
    initial_equity: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    inbox_seen: int = 0
    applied_fill_ids: set[str] = field(default_factory=set)
    released_order_ids: set[str] = field(default_factory=set)

    def equity(self) -> float:
        """Return the account's equity at the last prices."""
        return self.account.equity(self.portfolio.last_prices)

    @property
    def desk(self) -> TradingDesk:
        """Return the trading desk over this context's state and breakers."""
        return TradingDesk(self.breakers, self.trading)

    @property
    def peak_equity(self) -> float:
        """Return the highest equity seen."""
        return self.breakers.peak_equity

    def observe(self) -> None:
        """Refresh the gauges."""
        equity = self.equity()
        self.metrics.observe(
            equity,
            self.account.gross_exposure(self.portfolio.last_prices),
            self.breakers.drawdown_pct(equity),
            self.trading.state,
        )


# --- ledger: rebuild and freshness -----------------------------------------------------------


async def handled_count(unit: UnitOfWork) -> int:
    """Return how many messages any risk process has handled (its inbox rows)."""
    statement = (
        select(func.count())
        .select_from(ProcessedMessageRow)
        .where(ProcessedMessageRow.consumer == CONSUMER)
    )
    return int((await unit.session.execute(statement)).scalar_one())


async def rebuild(unit: UnitOfWork, context: RiskContext) -> None:
    """Rebuild positions, equity, peak, daily P&L, limits' history and state from the ledger."""
    # market data is not ledger state: bars this process received stay, stored ones are merged
    portfolio = PortfolioState(equity=context.initial_equity, market=context.portfolio.market)
    account = Account.opened_with(context.initial_equity)
    breakers = CircuitBreakers(context.breakers.settings, peak_equity=context.initial_equity)
    orders = await unit.orders.list_by_state(tuple(OrderState))
    released = _project_orders(portfolio, orders)
    fills = sorted(await unit.fills.list(), key=lambda fill: (fill.filled_at, fill.fill_id))
    marks: dict[str, float] = {}
    for fill in fills:
        breakers.roll_session(fill.filled_at, account.equity(marks))
        account, _position, realized = account.apply_fill(
            fill.symbol, Side(fill.side).sign * fill.quantity, fill.price, fill.commission
        )
        marks[fill.symbol] = fill.price
        if realized:
            breakers.on_trade_closed(realized, fill.filled_at)
        breakers.on_equity(account.equity(marks))
    portfolio.last_prices.update(marks)
    series = select(OhlcvRow.symbol, OhlcvRow.timeframe).distinct()
    pairs = (await unit.session.execute(series)).all()
    finest: dict[str, Timeframe] = {}
    for symbol, timeframe in pairs:
        candidate = Timeframe(timeframe)
        if symbol not in finest or candidate.duration < finest[symbol].duration:
            finest[symbol] = candidate
    for symbol, timeframe in sorted(finest.items()):
        for bar in await unit.ohlcv.latest(symbol, timeframe, limit=portfolio.market.max_bars):
            portfolio.market.on_bar(bar.to_event())
    for symbol, market in portfolio.market.symbols.items():
        portfolio.last_prices[symbol] = market.last_close
    current = await unit.trading_state.current()
    trading = TradingStateMachine()
    if current is not None:
        trading.state = TradingState(current.state)
        trading.reason = current.reason
        trading.until_next_session = current.changed_by in {
            BREAKER_ACTOR_PREFIX + name for name in SESSION_BREAKERS
        }
    portfolio.equity = account.equity(portfolio.last_prices)
    breakers.on_equity(portfolio.equity)
    context.portfolio = portfolio
    context.account = account
    context.breakers = breakers
    context.trading = trading
    context.applied_fill_ids = {fill.fill_id for fill in fills}
    context.released_order_ids = released
    context.inbox_seen = await handled_count(unit)


def _project_orders(portfolio: PortfolioState, orders: list[Order]) -> set[str]:
    """Project every order of the ledger into ``portfolio``; return the released order ids."""
    released: set[str] = set()
    for order in sorted(orders, key=lambda order: (order.signal_time, order.order_id)):
        if order.reduce_only and order.sized_by is None:
            # a bracket leg execution works at the broker: it moves positions as it fills
            if order.filled_quantity:
                portfolio.record_approval(
                    order.symbol, Side(order.side), order.filled_quantity, order.strategy
                )
            continue
        portfolio.decided_order_ids.add(order.order_id)
        portfolio.record_request(order.strategy, order.signal_time)
        if order.approved_quantity is None:
            continue
        releasing = OrderState(order.state) in RELEASING_STATES
        if releasing:
            released.add(order.order_id)
        counted = order.filled_quantity if releasing else order.approved_quantity
        portfolio.record_approval(order.symbol, Side(order.side), counted, order.strategy)
    return released


async def refresh_if_stale(unit: UnitOfWork, context: RiskContext) -> bool:
    """Rebuild when another risk process handled messages since; return True if rebuilt."""
    if await handled_count(unit) == context.inbox_seen:
        return False
    await rebuild(unit, context)
    return True


async def claim(unit: UnitOfWork, context: RiskContext, headers: MessageHeaders) -> bool:
    """Refresh a stale state, then claim the message; False when it was handled already."""
    await refresh_if_stale(unit, context)
    claimed = await unit.inbox.claim(CONSUMER, headers.message_id, context.clock.now())
    if claimed:
        context.inbox_seen += 1
    return claimed


# --- publishing ------------------------------------------------------------------------------


async def _outbox(
    unit: UnitOfWork, context: RiskContext, message: Message, cause: MessageHeaders | None
) -> None:
    headers = make_headers(
        message,
        producer=CONSUMER,
        occurred_at=context.clock.now(),
        cause=cause,
        traceparent=inject_traceparent(),
    )
    await unit.outbox.add(message, headers)


async def publish_outbox(context: RiskContext) -> None:
    """Publish what committed transactions left in the outbox (the relay serialises calls)."""
    await context.relay.publish_pending()


# --- trading state ---------------------------------------------------------------------------


async def record_changes(
    unit: UnitOfWork,
    context: RiskContext,
    changes: list[StateChange],
    cause: MessageHeaders | None,
) -> bool:
    """Persist, audit and publish (risk.state and alert.*) the desk's transitions."""
    for change in changes:
        await record_transition(unit, context, change, cause)
    return bool(changes)


async def record_transition(
    unit: UnitOfWork, context: RiskContext, change: StateChange, cause: MessageHeaders | None
) -> None:
    """Persist, audit and publish (risk.state and alert.*) one transition already applied."""
    now = context.clock.now()
    equity = context.equity()
    peak = max(context.peak_equity, equity)
    target, previous = change.state, change.previous
    await unit.trading_state.record(
        target.value, previous.value, change.reason, change.changed_by, now
    )
    await unit.audit.record(
        actor=change.changed_by,
        action="risk.trading_state",
        subject=target.value,
        outcome="changed",
        details={"reason": change.reason, "previous": previous.value, "equity": equity},
        at=now,
    )
    await _outbox(
        unit,
        context,
        RiskStateChanged(
            state=target,
            previous_state=previous,
            reason=change.reason,
            equity=equity,
            peak_equity=peak,
            drawdown_pct=context.breakers.drawdown_pct(equity),
            daily_pnl=context.breakers.daily_pnl(equity),
            changed_at=now,
            changed_by=change.changed_by,
        ),
        cause,
    )
    await _outbox(
        unit,
        context,
        AlertRaised(
            severity=change.severity,
            source="risk",
            code="trading_state_changed",
            message=f"trading state {previous.value} -> {target.value}: {change.reason}",
            details={"changed_by": change.changed_by, "state": target.value},
            raised_at=now,
        ),
        cause,
    )


async def change_trading_state(
    context: RiskContext,
    target: TradingState,
    reason: str,
    changed_by: str,
    cause: MessageHeaders | None,
    severity: Severity,
) -> None:
    """Move the trading state by command, record and audit it, and publish it."""
    now = context.clock.now()
    async with context.store.transaction() as unit:
        change = context.desk.command(target, reason, changed_by, severity, context.equity())
        if change is None:
            await unit.audit.record(
                actor=changed_by,
                action="risk.trading_state",
                subject=target.value,
                outcome="unchanged",
                details={"reason": reason},
                at=now,
            )
            return
        await record_transition(unit, context, change, cause)
    await publish_outbox(context)


# --- handlers --------------------------------------------------------------------------------


def _decision_details(decision: Decision) -> dict[str, object]:
    return {
        "request": decision.request.model_dump(mode="json"),
        "verdicts": [
            {"rule": v.rule, "passed": v.passed, "reason": v.reason, "values": v.values}
            for v in decision.verdicts
        ],
        "approved_quantity": decision.approval.quantity if decision.approval else None,
    }


async def on_order_requested(envelope: Envelope[Message], context: RiskContext) -> None:
    """Decide on an order request, record it with its event, then publish."""
    request = envelope.message
    if not isinstance(request, OrderRequested):
        return
    now = context.clock.now()
    async with context.store.transaction() as unit:
        if not await claim(unit, context, envelope.headers):
            return
        context.portfolio.equity = context.equity()
        view = await _as_of_signal(unit, context, request)
        decision = context.engine.check(request, view, context.trading.state)
        outcome = "approved" if decision.approved else "rejected"
        if decision.rule == "duplicate_order":
            outcome = "duplicate_ignored"
        else:
            await unit.orders.add(
                order_id=request.order_id,
                strategy=request.strategy,
                symbol=request.symbol,
                side=request.side.value,
                order_type=request.order_type.value,
                requested_quantity=request.quantity,
                approved_quantity=decision.approval.quantity if decision.approval else None,
                sized_by=decision.approval.sized_by if decision.approval else None,
                rejected_by=decision.rule,
                reduce_only=request.reduce_only,
                limit_price=request.limit_price,
                stop_price=request.stop_price,
                stop_loss=request.stop_loss,
                take_profit=request.take_profit,
                reference_price=request.reference_price,
                state=(OrderState.NEW if decision.approved else OrderState.REJECTED).value,
                signal_time=request.signal_time,
                at=now,
                reason=decision.rejection.reason if decision.rejection else "approved by risk",
            )
            if decision.approval is not None:
                await unit.approvals.add(decision.approval)
                await _outbox(unit, context, decision.approval, envelope.headers)
            elif decision.rejection is not None:
                await _outbox(unit, context, decision.rejection, envelope.headers)
        await unit.audit.record(
            actor=CONSUMER,
            action="risk.decision",
            subject=request.order_id,
            outcome=outcome,
            details=_decision_details(decision),
            at=now,
        )
    if outcome != "duplicate_ignored":
        context.portfolio.decided_order_ids.add(request.order_id)
        context.portfolio.record_request(request.strategy, request.signal_time)
    if decision.approval is not None:
        context.portfolio.record_approval(
            request.symbol, request.side, decision.approval.quantity, request.strategy
        )
    context.metrics.decisions.labels(outcome=outcome, rule=decision.rule or "").inc()
    await publish_outbox(context)


async def _as_of_signal(
    unit: UnitOfWork, context: RiskContext, request: OrderRequested
) -> PortfolioState:
    """Return the portfolio priced at the request's signal time, not at the newest bar.

    Bars and requests travel on different queues: a strategy running behind (or restarted)
    sends requests for bars risk passed long ago. Pricing them at the close the strategy saw
    keeps the decision what it would have been in step, in a replay and after a restart.
    """
    moment = request.signal_time
    portfolio = context.portfolio
    prices = dict(portfolio.last_prices)
    # only the prices a decision reads: the order's symbol and the held or projected ones
    held = {symbol for symbol, quantity in portfolio.projected_positions.items() if quantity}
    held |= {symbol for symbol, position in context.account.positions.items() if position.quantity}
    for symbol in sorted({request.symbol, *held}):
        close = await _close_as_of(unit, portfolio, symbol, moment)
        if close is not None:
            prices[symbol] = close
    return replace(context.portfolio, last_prices=prices, equity=context.account.equity(prices))


async def _close_as_of(
    unit: UnitOfWork, portfolio: PortfolioState, symbol: str, moment: datetime
) -> float | None:
    """Return the symbol's close at ``moment`` (the last one before it), from memory or ledger."""
    market = portfolio.market.symbols.get(symbol)
    if market is None or not market.close_values:
        return None
    if market.last_bar_at == moment:
        return market.last_close
    if market.last_bar_at < moment:
        # risk has not seen that bar yet: ingestion stored it before publishing it
        stored = await unit.ohlcv.range(
            symbol,
            _timeframe_of(market.interval),
            start=moment - market.interval,
            end=moment - market.interval + timedelta(microseconds=1),
        )
        if stored:
            return stored[-1].close
        return market.last_close
    times = list(market.close_times)
    position = bisect.bisect_right(times, pd.Timestamp(moment).value)
    if position == 0:
        return None
    return market.close_values[position - 1]


_TIMEFRAMES_BY_DURATION = {timeframe.duration: timeframe for timeframe in Timeframe}


def _timeframe_of(interval: timedelta) -> Timeframe:
    # a symbol's interval is always its bars' timeframe duration
    return _TIMEFRAMES_BY_DURATION[interval]


def _observe_bar(context: RiskContext, bar: BarClosed) -> list[StateChange]:
    """Apply a bar in memory; return the trading-state changes the desk decided."""
    market = context.portfolio.market.on_bar(bar)
    context.portfolio.last_prices[bar.symbol] = market.last_close
    fresh = market.last_bar_at == bar.closed_at
    return context.desk.on_market(
        bar.closed_at,
        context.equity(),
        symbol=bar.symbol if fresh else None,
        atr=market.atr_value,
        atr_baseline=market.atr_baseline,
    )


async def on_bar_closed(envelope: Envelope[Message], context: RiskContext) -> None:
    """Track prices and history; let the desk roll sessions and check the breakers.

    Bars touch the ledger only when the trading state changes (bars are the busiest
    stream); the change is decided again on a refreshed state if another risk process
    handled messages meanwhile.
    """
    bar = envelope.message
    if not isinstance(bar, BarClosed):
        return
    changes = _observe_bar(context, bar)
    if changes:
        async with context.store.transaction() as unit:
            if await refresh_if_stale(unit, context):
                changes = _observe_bar(context, bar)
            await record_changes(unit, context, changes, envelope.headers)
        await publish_outbox(context)
    context.observe()


async def on_fill_executed(envelope: Envelope[Message], context: RiskContext) -> None:
    """Apply a fill to risk's account; check the loss breakers."""
    fill = envelope.message
    if not isinstance(fill, FillExecuted):
        return
    async with context.store.transaction() as unit:
        if not await claim(unit, context, envelope.headers):
            return
        if fill.fill_id in context.applied_fill_ids:
            return
        equity_before = context.equity()
        context.account, _position, realized = context.account.apply_fill(
            fill.symbol, fill.side.sign * fill.quantity, fill.price, fill.commission
        )
        context.applied_fill_ids.add(fill.fill_id)
        if fill.order_id not in context.portfolio.decided_order_ids:
            # a bracket leg (no approval of risk's): its fill moves the projected positions
            context.portfolio.record_approval(fill.symbol, fill.side, fill.quantity, fill.strategy)
        context.portfolio.last_prices.setdefault(fill.symbol, fill.price)
        changes = context.desk.on_fill(fill.filled_at, realized, equity_before, context.equity())
        changed = await record_changes(unit, context, changes, envelope.headers)
    context.observe()
    if changed:
        await publish_outbox(context)


async def on_order_status_changed(envelope: Envelope[Message], context: RiskContext) -> None:
    """Release the unfilled part of an order that ended early; count broker rejections."""
    change = envelope.message
    if not isinstance(change, OrderStatusChanged) or change.state not in RELEASING_STATES:
        return
    changed = False
    async with context.store.transaction() as unit:
        if not await claim(unit, context, envelope.headers):
            return
        order = await unit.orders.get(change.order_id)
        if change.state is OrderState.REJECTED:
            changes = context.desk.on_error(
                change.changed_at, f"order {change.order_id} rejected: {change.reason}"
            )
            changed = await record_changes(unit, context, changes, envelope.headers)
    if (
        order is not None
        and order.approved_quantity is not None
        # only what risk approved was projected (a bracket leg moves positions by its fills)
        and order.order_id in context.portfolio.decided_order_ids
        and order.order_id not in context.released_order_ids
    ):
        unfilled = order.approved_quantity - change.filled_quantity
        context.released_order_ids.add(order.order_id)
        context.portfolio.release(order.symbol, Side(order.side), unfilled, order.strategy)
    context.observe()
    if changed:
        await publish_outbox(context)


async def on_alert_raised(envelope: Envelope[Message], context: RiskContext) -> None:
    """Reduce on a failed reconciliation; count other services' critical alerts as errors."""
    alert = envelope.message
    if not isinstance(alert, AlertRaised) or alert.source == CONSUMER:
        return
    async with context.store.transaction() as unit:
        if not await claim(unit, context, envelope.headers):
            return
        if alert.code == RECONCILIATION_FAILED:
            changes = context.desk.on_reconciliation_failed(f"{alert.source}: {alert.message}")
        elif alert.severity is Severity.CRITICAL:
            changes = context.desk.on_error(alert.raised_at, f"{alert.source}: {alert.code}")
        else:
            changes = []
        changed = await record_changes(unit, context, changes, envelope.headers)
    context.observe()
    if changed:
        await publish_outbox(context)


async def on_control(envelope: Envelope[Message], context: RiskContext) -> None:
    """Apply halt, resume and flatten commands.

    The gateway authenticates the admin; the broker lets only the gateway publish
    ``control.resume`` (risk itself may only publish halt and flatten).
    """
    command = envelope.message
    async with context.store.transaction() as unit:
        if not await claim(unit, context, envelope.headers):
            return
    if isinstance(command, HaltTrading):
        await change_trading_state(
            context,
            TradingState.HALTED,
            command.reason or "kill switch",
            command.requested_by,
            envelope.headers,
            Severity.CRITICAL,
        )
    elif isinstance(command, ResumeTrading):
        await change_trading_state(
            context,
            TradingState.ACTIVE,
            command.reason or "resumed by admin",
            command.requested_by,
            envelope.headers,
            Severity.WARNING,
        )
    elif isinstance(command, FlattenPositions):
        await flatten(context, command, envelope.headers)
    context.observe()


async def flatten(context: RiskContext, command: FlattenPositions, cause: MessageHeaders) -> None:
    """Approve closing orders for every projected position (or one symbol's).

    Each strategy's position is closed by its own order, tagged with that strategy, so every
    strategy learns from its fill that it is flat.
    """
    now = context.clock.now()
    limits = context.engine.limits
    async with context.store.transaction() as unit:
        positions = sorted(context.portfolio.strategy_positions.items())
        for (strategy, symbol), quantity in positions:
            if abs(quantity) < 1e-9 or (command.symbol and symbol != command.symbol):
                continue
            price = context.portfolio.last_prices.get(symbol)
            if price is None:
                continue
            side = Side.SELL if quantity > 0 else Side.BUY
            order_id = deterministic_id("flat", cause.message_id, strategy, symbol)
            tolerance = limits.fill_price_tolerance_pct / 100.0
            approval = context.engine.signer.sign(
                OrderApproved(
                    approval_id=deterministic_id("apr", order_id),
                    order_id=order_id,
                    strategy=strategy,
                    symbol=symbol,
                    side=side,
                    quantity=abs(quantity),
                    requested_quantity=abs(quantity),
                    sized_by=SizingConstraint.POSITION_HELD.value,
                    reduce_only=True,
                    price_floor=price * (1 - tolerance),
                    price_ceiling=price * (1 + tolerance),
                    signal_time=now,
                    issued_at=now,
                    expires_at=now + timedelta(seconds=limits.approval_ttl_seconds),
                    key_id=UNSIGNED_KEY_ID,
                    signature=UNSIGNED_SIGNATURE,
                )
            )
            await unit.orders.add(
                order_id=order_id,
                strategy=strategy,
                symbol=symbol,
                side=side.value,
                order_type="MARKET",
                requested_quantity=abs(quantity),
                approved_quantity=abs(quantity),
                limit_price=None,
                stop_price=None,
                stop_loss=None,
                take_profit=None,
                reference_price=price,
                sized_by=SizingConstraint.POSITION_HELD.value,
                reduce_only=True,
                state=OrderState.NEW.value,
                signal_time=now,
                at=now,
                reason=f"flatten requested by {command.requested_by}",
            )
            await unit.approvals.add(approval)
            await _outbox(unit, context, approval, cause)
            context.portfolio.decided_order_ids.add(order_id)
            context.portfolio.record_approval(symbol, side, abs(quantity), strategy)
        await unit.audit.record(
            actor=command.requested_by,
            action="risk.flatten",
            subject=command.symbol or "*",
            outcome="approved",
            details={"reason": command.reason},
            at=now,
        )
    await publish_outbox(context)
