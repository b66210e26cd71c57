"""The trading desk: trading state and circuit breakers, pure — events in, state changes out.

One object decides every transition of the trading state: session rolls (which lift what a
session breaker set), the breakers' trips on equity, volatility, closed trades, errors and
failed reconciliations, and an admin's commands. It does no I/O: the risk service's handlers
persist and publish the changes it returns, and the backtester drives the very same object, so
a breaker fires in a backtest exactly where it fires live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tai_events.alerts import Severity
from tai_events.risk import TradingState
from tai_risk.breakers import CircuitBreakers, Trip
from tai_risk.state import TradingStateMachine

SESSION_ACTOR = "risk.session"
"""``changed_by`` of a transition a new session made."""


@dataclass(frozen=True, slots=True)
class StateChange:
    """A transition of the trading state the desk decided (already applied to it)."""

    previous: TradingState
    state: TradingState
    reason: str
    changed_by: str
    severity: Severity


@dataclass
class TradingDesk:
    """Trading state and breakers; every method returns the transitions it made."""

    breakers: CircuitBreakers
    trading: TradingStateMachine

    @property
    def state(self) -> TradingState:
        """Return the current trading state."""
        return self.trading.state

    def on_market(
        self,
        moment: datetime,
        equity: float,
        *,
        symbol: str | None = None,
        atr: float | None = None,
        atr_baseline: float | None = None,
    ) -> list[StateChange]:
        """Take a new bar's close time and the equity marked at it (and the symbol's ATR)."""
        changes = self.roll_session(moment, equity)
        trips = self.breakers.on_equity(equity)
        if symbol is not None:
            trips += self.breakers.on_volatility(symbol, atr, atr_baseline)
        return changes + self.apply(trips)

    def on_fill(
        self, moment: datetime, realized_pnl: float, equity_before: float, equity_after: float
    ) -> list[StateChange]:
        """Take a fill at ``moment``: the equity before it opens a session that is due, its
        realised P&L (0 when it opened a position) counts towards the losing streak, and the
        equity after it is checked against the loss limits."""
        changes = self.roll_session(moment, equity_before)
        trips = self.breakers.on_trade_closed(realized_pnl, moment) if realized_pnl else []
        trips += self.breakers.on_equity(equity_after)
        return changes + self.apply(trips)

    def on_error(self, moment: datetime, description: str) -> list[StateChange]:
        """Count an error (a broker's rejection, another service's critical alert)."""
        return self.apply(self.breakers.on_error(moment, description))

    def on_reconciliation_failed(self, description: str) -> list[StateChange]:
        """Reduce exposure: the broker's book and the ledger disagree."""
        return self.apply(self.breakers.on_reconciliation_failed(description))

    def command(
        self,
        target: TradingState,
        reason: str,
        changed_by: str,
        severity: Severity,
        equity: float,
    ) -> StateChange | None:
        """Apply an admin's halt or resume; resuming accepts the losses so far (a new base)."""
        previous = self.trading.transition(target, reason)
        if previous is None:
            return None
        if target is TradingState.ACTIVE:
            self.breakers.rebase(equity)
        return StateChange(previous, target, reason, changed_by, severity)

    def roll_session(self, moment: datetime, equity: float) -> list[StateChange]:
        """Open a new session at ``moment`` if due; lift a state a session breaker set."""
        if not self.breakers.roll_session(moment, equity):
            return []
        trading = self.trading
        if not trading.until_next_session or trading.state is TradingState.ACTIVE:
            return []
        reason = "a new session started"
        previous = trading.transition(TradingState.ACTIVE, reason)
        if previous is None:
            return []
        return [StateChange(previous, TradingState.ACTIVE, reason, SESSION_ACTOR, Severity.WARNING)]

    def apply(self, trips: list[Trip]) -> list[StateChange]:
        """Escalate the state for each trip (breakers never relax it)."""
        changes = []
        for trip in trips:
            previous = self.trading.escalate(
                trip.target, trip.reason, until_next_session=trip.until_next_session
            )
            if previous is not None:
                changes.append(
                    StateChange(previous, trip.target, trip.reason, trip.actor, trip.severity)
                )
        return changes
