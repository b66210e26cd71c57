"""LiveState: what the gateway has recently seen on the bus, read by the API and the console."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from tai_events.alerts import AlertRaised
from tai_events.market import BarClosed
from tai_events.ml import PredictionMade
from tai_events.orders import (
    FillExecuted,
    OrderRejected,
    OrderStatusChanged,
    PositionUpdated,
    SignalGenerated,
)
from tai_events.risk import RiskLimitsPublished, RiskStateChanged
from tai_events.strategies import StrategyParametersUpdated

DEFAULT_FILL_CAPACITY = 500
DEFAULT_ORDER_CAPACITY = 1_000
DEFAULT_ALERT_CAPACITY = 200
DEFAULT_BAR_HISTORY = 500
DEFAULT_PREDICTION_CAPACITY = 500


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """A consistent, immutable copy of the live state at one version."""

    version: int
    fills: tuple[FillExecuted, ...]
    """Newest first."""
    orders: tuple[OrderStatusChanged, ...]
    """Latest state of each recent order, most recently changed first."""
    rejections: tuple[OrderRejected, ...]
    positions: tuple[PositionUpdated, ...]
    risk: RiskStateChanged | None
    alerts: tuple[AlertRaised, ...]
    """Newest first."""
    bars: tuple[BarClosed, ...]
    """Latest bar of each (symbol, timeframe)."""
    bar_history: tuple[BarClosed, ...] = ()
    """Recent bars of every symbol and timeframe, oldest first (the live candles)."""
    signals: tuple[SignalGenerated, ...] = ()
    """Newest first."""
    predictions: tuple[PredictionMade, ...] = ()
    """Newest first."""
    strategies: tuple[StrategyParametersUpdated, ...] = ()
    """Latest parameters of each strategy, by name."""
    risk_limits: RiskLimitsPublished | None = None
    """The limits and breakers risk last announced (None until it has)."""


class LiveState:
    """Bounded in-memory view of recent events; every change bumps ``version``.

    Written by bus handlers on the event loop, read by API and console threads: a lock
    guards it and readers get immutable snapshots.
    """

    def __init__(
        self,
        *,
        fill_capacity: int = DEFAULT_FILL_CAPACITY,
        order_capacity: int = DEFAULT_ORDER_CAPACITY,
        alert_capacity: int = DEFAULT_ALERT_CAPACITY,
        bar_history: int = DEFAULT_BAR_HISTORY,
        prediction_capacity: int = DEFAULT_PREDICTION_CAPACITY,
    ) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._fills: deque[FillExecuted] = deque(maxlen=fill_capacity)
        self._fill_ids: set[str] = set()
        self._orders: OrderedDict[str, OrderStatusChanged] = OrderedDict()
        self._order_capacity = order_capacity
        self._rejections: deque[OrderRejected] = deque(maxlen=alert_capacity)
        self._positions: dict[str, PositionUpdated] = {}
        self._risk: RiskStateChanged | None = None
        self._alerts: deque[AlertRaised] = deque(maxlen=alert_capacity)
        self._bars: dict[tuple[str, str], BarClosed] = {}
        self._bar_history: deque[BarClosed] = deque(maxlen=bar_history)
        self._signals: deque[SignalGenerated] = deque(maxlen=alert_capacity)
        self._predictions: deque[PredictionMade] = deque(maxlen=prediction_capacity)
        self._strategies: dict[str, StrategyParametersUpdated] = {}
        self._risk_limits: RiskLimitsPublished | None = None

    @property
    def version(self) -> int:
        """Return the change counter (cheap: the console polls it every second)."""
        return self._version

    def record_fill(self, fill: FillExecuted) -> None:
        """Remember a fill once (redeliveries do not duplicate it)."""
        with self._lock:
            if fill.fill_id in self._fill_ids:
                return
            if len(self._fills) == self._fills.maxlen:
                self._fill_ids.discard(self._fills[0].fill_id)
            self._fills.append(fill)
            self._fill_ids.add(fill.fill_id)
            self._version += 1

    def record_order(self, update: OrderStatusChanged) -> None:
        """Keep the newest state of an order (an older update never overwrites a newer one)."""
        with self._lock:
            current = self._orders.get(update.order_id)
            if current is not None and current.changed_at > update.changed_at:
                return
            self._orders[update.order_id] = update
            self._orders.move_to_end(update.order_id)
            while len(self._orders) > self._order_capacity:
                self._orders.popitem(last=False)
            self._version += 1

    def record_rejection(self, rejection: OrderRejected) -> None:
        """Remember a rejected order."""
        with self._lock:
            self._rejections.append(rejection)
            self._version += 1

    def record_position(self, position: PositionUpdated) -> None:
        """Keep the newest position of a symbol."""
        with self._lock:
            current = self._positions.get(position.symbol)
            if current is not None and current.updated_at > position.updated_at:
                return
            self._positions[position.symbol] = position
            self._version += 1

    def record_risk_state(self, risk: RiskStateChanged) -> None:
        """Keep the newest risk state."""
        with self._lock:
            if self._risk is not None and self._risk.changed_at > risk.changed_at:
                return
            self._risk = risk
            self._version += 1

    def record_alert(self, alert: AlertRaised) -> None:
        """Remember an alert."""
        with self._lock:
            self._alerts.append(alert)
            self._version += 1

    def record_bar(self, bar: BarClosed) -> None:
        """Keep the latest bar of a symbol and timeframe."""
        with self._lock:
            key = (bar.symbol, bar.timeframe.value)
            current = self._bars.get(key)
            if current is not None and current.closed_at >= bar.closed_at:
                return
            self._bars[key] = bar
            self._bar_history.append(bar)
            self._version += 1

    def record_signal(self, signal: SignalGenerated) -> None:
        """Remember a strategy signal (marked on the candles)."""
        with self._lock:
            self._signals.append(signal)
            self._version += 1

    def record_prediction(self, prediction: PredictionMade) -> None:
        """Remember a model prediction."""
        with self._lock:
            self._predictions.append(prediction)
            self._version += 1

    def record_risk_limits(self, limits: RiskLimitsPublished) -> None:
        """Remember what risk enforces (the newest announcement wins)."""
        with self._lock:
            current = self._risk_limits
            if current is None or limits.published_at >= current.published_at:
                self._risk_limits = limits
                self._version += 1

    def record_strategy(self, update: StrategyParametersUpdated) -> None:
        """Keep the newest parameters of a strategy."""
        with self._lock:
            current = self._strategies.get(update.strategy)
            if current is not None and current.updated_at > update.updated_at:
                return
            self._strategies[update.strategy] = update
            self._version += 1

    def snapshot(self) -> LiveSnapshot:
        """Return an immutable copy of everything, with the version it was taken at."""
        with self._lock:
            return LiveSnapshot(
                version=self._version,
                fills=tuple(reversed(self._fills)),
                orders=tuple(reversed(self._orders.values())),
                rejections=tuple(reversed(self._rejections)),
                positions=tuple(sorted(self._positions.values(), key=lambda p: p.symbol)),
                risk=self._risk,
                alerts=tuple(reversed(self._alerts)),
                bars=tuple(self._bars[key] for key in sorted(self._bars)),
                bar_history=tuple(self._bar_history),
                signals=tuple(reversed(self._signals)),
                predictions=tuple(reversed(self._predictions)),
                strategies=tuple(self._strategies[name] for name in sorted(self._strategies)),
                risk_limits=self._risk_limits,
            )
