"""Circuit breakers: pure rules that move the trading state on losses, volatility and errors.

* Daily loss >= ``daily_loss_halt_pct`` of the session's opening equity -> HALTED until the
  next session. Sessions are UTC days starting at ``session_start_hour_utc`` in market time.
* Drawdown from the equity peak >= ``drawdown_reduce_pct`` -> REDUCING, >=
  ``drawdown_halt_pct`` -> HALTED (both until an admin resumes).
* ``max_consecutive_losses`` losing trades in a row within one session -> REDUCING until the
  next session (the streak restarts each session, like the daily loss budget).
* Volatility spike: a symbol's ATR above ``volatility_spike_multiple`` x its mean over the last
  ``atr_mean_bars`` bars -> REDUCING.
* Error burst: ``error_burst_count`` errors (critical alerts from other services, orders the
  broker rejected) within ``error_burst_window_seconds`` -> REDUCING.
* Failed reconciliation (alert code ``reconciliation_failed``) -> REDUCING.

Breakers only ever make the state stricter; leaving HALTED or REDUCING needs an admin's
ResumeTrading, except a state a session breaker set, which the next session lifts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from tai_events.alerts import Severity
from tai_events.risk import BreakerDescription, TradingState

SESSION_BREAKERS = frozenset({"daily_loss", "consecutive_losses"})
"""Breakers whose state the next session lifts."""
BREAKER_ACTOR_PREFIX = "circuit_breaker."
"""``changed_by`` of a breaker's transition: the prefix and the breaker's name."""


class BreakerSettings(BaseModel):
    """Circuit breaker thresholds; the defaults are the documented production defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    daily_loss_halt_pct: float = Field(default=3.0, gt=0)
    drawdown_reduce_pct: float = Field(default=7.0, gt=0)
    drawdown_halt_pct: float = Field(default=10.0, gt=0)
    max_consecutive_losses: int = Field(default=5, ge=1)
    volatility_spike_multiple: float = Field(default=3.0, gt=1)
    error_burst_count: int = Field(default=5, ge=1)
    error_burst_window_seconds: float = Field(default=60.0, gt=0)
    session_start_hour_utc: int = Field(default=0, ge=0, le=23)


@dataclass(frozen=True, slots=True)
class BreakerRule:
    """One breaker rule: what trips it, the state it moves to and what lifts that state."""

    breaker: str
    setting: str | None
    """The BreakerSettings field holding its threshold (None: no threshold)."""
    target: TradingState
    severity: Severity
    condition: str


BREAKER_RULES: tuple[BreakerRule, ...] = (
    BreakerRule(
        "daily_loss",
        "daily_loss_halt_pct",
        TradingState.HALTED,
        Severity.CRITICAL,
        "loss since the session opened >= threshold % of its opening equity",
    ),
    BreakerRule(
        "drawdown",
        "drawdown_reduce_pct",
        TradingState.REDUCING,
        Severity.WARNING,
        "drawdown from the equity peak >= threshold %",
    ),
    BreakerRule(
        "drawdown",
        "drawdown_halt_pct",
        TradingState.HALTED,
        Severity.CRITICAL,
        "drawdown from the equity peak >= threshold %",
    ),
    BreakerRule(
        "consecutive_losses",
        "max_consecutive_losses",
        TradingState.REDUCING,
        Severity.WARNING,
        "losing trades in a row within one session >= threshold",
    ),
    BreakerRule(
        "volatility_spike",
        "volatility_spike_multiple",
        TradingState.REDUCING,
        Severity.WARNING,
        "a symbol's ATR > threshold x its recent mean",
    ),
    BreakerRule(
        "error_burst",
        "error_burst_count",
        TradingState.REDUCING,
        Severity.WARNING,
        "errors (critical alerts, broker rejections) within the burst window >= threshold",
    ),
    BreakerRule(
        "reconciliation",
        None,
        TradingState.REDUCING,
        Severity.CRITICAL,
        "the broker's book and the ledger disagree",
    ),
)
"""Every breaker, as the trips below apply them (and as risk publishes them)."""
_RULES_BY_KEY = {rule.setting or rule.breaker: rule for rule in BREAKER_RULES}


@dataclass(frozen=True, slots=True)
class Trip:
    """A breaker fired: the state it asks for and why."""

    breaker: str
    target: TradingState
    reason: str
    severity: Severity

    @property
    def until_next_session(self) -> bool:
        """Return True when the next session lifts this breaker's state."""
        return self.breaker in SESSION_BREAKERS

    @property
    def actor(self) -> str:
        """Return the ``changed_by`` recorded for this breaker's transition."""
        return BREAKER_ACTOR_PREFIX + self.breaker


def _trip(key: str, reason: str) -> Trip:
    rule = _RULES_BY_KEY[key]
    return Trip(rule.breaker, rule.target, reason, rule.severity)


@dataclass
class CircuitBreakers:
    """The breakers' running state: peak, session baseline, loss streak, recent errors."""

    settings: BreakerSettings
    peak_equity: float
    session_start: datetime | None = None
    session_start_equity: float = 0.0
    last_equity: float = 0.0
    consecutive_losses: int = 0
    streak_session: datetime | None = None
    error_times: deque[datetime] = field(default_factory=deque)

    def session_of(self, moment: datetime) -> datetime:
        """Return the start of the session containing ``moment``."""
        start = moment.replace(
            hour=self.settings.session_start_hour_utc, minute=0, second=0, microsecond=0
        )
        return start if start <= moment else start - timedelta(days=1)

    def roll_session(self, moment: datetime, equity: float) -> bool:
        """Open a new session when ``moment`` is past the current one; return True if so."""
        session = self.session_of(moment)
        if self.session_start is not None and session <= self.session_start:
            return False
        self.session_start = session
        self.session_start_equity = equity
        return True

    def drawdown_pct(self, equity: float) -> float:
        """Return the drawdown from the peak, in percent."""
        if self.peak_equity <= 0:
            return 0.0
        return max(0.0, (self.peak_equity - equity) / self.peak_equity * 100.0)

    def daily_pnl(self, equity: float) -> float:
        """Return the profit or loss since the session opened."""
        return equity - self.session_start_equity if self.session_start is not None else 0.0

    def on_equity(self, equity: float) -> list[Trip]:
        """Update the peak and check the drawdown and daily-loss breakers."""
        self.last_equity = equity
        self.peak_equity = max(self.peak_equity, equity)
        trips = []
        drawdown = self.drawdown_pct(equity)
        if drawdown >= self.settings.drawdown_halt_pct:
            trips.append(
                _trip(
                    "drawdown_halt_pct",
                    f"drawdown {drawdown:.2f}% >= {self.settings.drawdown_halt_pct}% "
                    f"(equity {equity:.2f}, peak {self.peak_equity:.2f})",
                )
            )
        elif drawdown >= self.settings.drawdown_reduce_pct:
            trips.append(
                _trip(
                    "drawdown_reduce_pct",
                    f"drawdown {drawdown:.2f}% >= {self.settings.drawdown_reduce_pct}% "
                    f"(equity {equity:.2f}, peak {self.peak_equity:.2f})",
                )
            )
        if self.session_start is not None and self.session_start_equity > 0:
            loss_pct = -self.daily_pnl(equity) / self.session_start_equity * 100.0
            if loss_pct >= self.settings.daily_loss_halt_pct:
                trips.append(
                    _trip(
                        "daily_loss_halt_pct",
                        f"daily loss {loss_pct:.2f}% >= {self.settings.daily_loss_halt_pct}% "
                        f"of the session's opening equity {self.session_start_equity:.2f}",
                    )
                )
        return trips

    def on_trade_closed(self, realized_pnl: float, moment: datetime) -> list[Trip]:
        """Count a trade closed at ``moment`` towards its session's losing streak.

        The streak follows the trades' own sessions (fills arrive in order on their own
        queue), not the bar stream's, so it is the same however far the bars run ahead.
        """
        session = self.session_of(moment)
        if self.streak_session is None or session > self.streak_session:
            self.streak_session = session
            self.consecutive_losses = 0
        if realized_pnl < 0:
            self.consecutive_losses += 1
        elif realized_pnl > 0:
            self.consecutive_losses = 0
        if self.consecutive_losses >= self.settings.max_consecutive_losses:
            return [
                _trip(
                    "max_consecutive_losses",
                    f"{self.consecutive_losses} consecutive losing trades this session "
                    f"(limit {self.settings.max_consecutive_losses})",
                )
            ]
        return []

    def on_volatility(self, symbol: str, atr: float | None, atr_mean: float | None) -> list[Trip]:
        """Check a symbol's ATR against a multiple of its recent mean."""
        if atr is None or atr_mean is None or atr_mean <= 0:
            return []
        if atr > self.settings.volatility_spike_multiple * atr_mean:
            return [
                _trip(
                    "volatility_spike_multiple",
                    f"{symbol} ATR {atr:.6g} > {self.settings.volatility_spike_multiple} x its "
                    f"mean {atr_mean:.6g}",
                )
            ]
        return []

    def on_error(self, moment: datetime, description: str) -> list[Trip]:
        """Count an error; a burst of them in the window trips the breaker."""
        window = timedelta(seconds=self.settings.error_burst_window_seconds)
        self.error_times.append(moment)
        while self.error_times and self.error_times[0] <= moment - window:
            self.error_times.popleft()
        if len(self.error_times) >= self.settings.error_burst_count:
            return [
                _trip(
                    "error_burst_count",
                    f"{len(self.error_times)} errors within "
                    f"{self.settings.error_burst_window_seconds:g}s, the last: {description}",
                )
            ]
        return []

    def on_reconciliation_failed(self, description: str) -> list[Trip]:
        """Reduce exposure when the broker's book and ours disagree."""
        return [
            _trip(
                "reconciliation",
                f"reconciliation failed: {description}",
            )
        ]

    def rebase(self, equity: float) -> None:
        """Start afresh from ``equity`` (an admin resumed trading and accepted the losses)."""
        self.peak_equity = equity
        self.last_equity = equity
        if self.session_start is not None:
            self.session_start_equity = equity
        self.consecutive_losses = 0
        self.error_times.clear()


def describe_breakers(settings: BreakerSettings) -> list[BreakerDescription]:
    """Return the breaker table risk applies with these thresholds (as it publishes it)."""
    return [
        BreakerDescription(
            breaker=rule.breaker,
            condition=rule.condition,
            setting=rule.setting,
            threshold=None if rule.setting is None else float(getattr(settings, rule.setting)),
            moves_to=rule.target,
            lifted_by="next session" if rule.breaker in SESSION_BREAKERS else "admin resume",
        )
        for rule in BREAKER_RULES
    ]
