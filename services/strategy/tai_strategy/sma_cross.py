"""The classic moving-average crossover: the reference strategy for parity checks."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tai_events.market import BarClosed
from tai_events.orders import Side, SignalDirection
from tai_strategy.base import OrderIntent


class SmaCrossParameters(BaseModel):
    """Parameters of the crossover (defaults documented here are the live defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fast: int = Field(default=10, ge=1, le=1000, description="fast SMA length in bars")
    slow: int = Field(default=30, ge=2, le=5000, description="slow SMA length in bars")
    quantity: float = Field(default=10_000.0, gt=0, description="position size in units")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossParameters:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


_UNIT_ROUNDOFF = 2.0**-53
"""Relative error bound of one IEEE double operation (round to nearest)."""
_SMALLEST = 1e-250
"""Values below this could underflow in the fast path; windows holding one run exactly."""
_LARGEST_TOLERANCE = 1e300
"""Windows whose error bound reaches this (values near overflow) run exactly."""
_NOT_READY = math.nan
"""What ``push`` returns before ``slow`` closes are held: no comparison with it is true."""
_BEFORE_ANY_BAR = datetime.min.replace(tzinfo=UTC)


class CrossingWindows:
    """The sign of SMA(fast) - SMA(slow) over a stream of closes, exact and O(1) per close.

    The sign is that of ``math.fsum(last fast) / fast - math.fsum(last slow) / slow``, the
    correctly rounded averages, so it matches the vectorised engine bit for bit. Each close
    updates one running float, ``slow * fast_sum - fast * slow_sum``, whose rounding error since
    the last exact recomputation is bounded by ``_tolerance`` (see ``_recompute``); a value
    beyond the tolerance has the sign of the exact difference. Within the tolerance (near a
    tie), every ``slow`` closes (to reset the drift), and for values outside the bounded range,
    the averages are recomputed exactly with ``math.fsum``: O(slow), but rare.
    """

    __slots__ = (
        "_ceiling",
        "_fast",
        "_fast_weight",
        "_leaving_fast",
        "_negative_tolerance",
        "_new_weight",
        "_remaining",
        "_scaled",
        "_slow",
        "_slow_weight",
        "_tolerance",
        "_window",
    )

    def __init__(self, fast: int, slow: int) -> None:
        self._fast = fast
        self._slow = slow
        # Floats, so the hot path never converts an int.
        self._fast_weight = float(fast)
        self._slow_weight = float(slow)
        self._new_weight = float(slow - fast)
        self._leaving_fast = -fast - 1  # after an append, the close that leaves the fast window
        self._window: deque[float] = deque()
        self._scaled = 0.0  # slow * fast_sum - fast * slow_sum, approximately
        self._remaining = 0  # closes the fast path may still take before a recomputation
        self._ceiling = -math.inf  # largest value the current tolerance covers
        self._tolerance = math.inf
        self._negative_tolerance = -math.inf

    def push(self, value: float) -> float:
        """Add the newest close; return the sign of the difference (1.0, -1.0 or 0.0), or
        NaN until ``slow`` closes are held."""
        window = self._window
        window.append(value)
        remaining = self._remaining
        if remaining and _SMALLEST <= value <= self._ceiling:
            self._remaining = remaining - 1
            # One close enters both windows; window[-fast - 1] leaves the fast one and the
            # oldest leaves the slow one (read before it is popped: left to right).
            scaled = self._scaled = self._scaled + (
                value * self._new_weight
                - window[self._leaving_fast] * self._slow_weight
                + window.popleft() * self._fast_weight
            )
            if scaled > self._tolerance:
                return 1.0
            if scaled < self._negative_tolerance:
                return -1.0
        return self._recompute()

    def _recompute(self) -> float:
        """Compute the sign exactly and restart the running difference from exact sums.

        Error bound of the fast path, with u the unit roundoff and V >= every value seen since
        (the ceiling): at the restart the running difference errs by at most 6u*f*s*V; each
        update by at most u*s*V*(f + 11) (three products and two sums of magnitude <= 3sV,
        then one addition of magnitude <= (f + 3)sV); the fast path runs at most s updates;
        and rounding each average may move the difference by 4u*f*s*V before it changes sign.
        All that stays below u*V*s*(s + 10)*(f + 11), a quarter of the tolerance.
        """
        window = self._window
        slow = self._slow
        if len(window) > slow:
            window.popleft()
        if len(window) < slow:
            return _NOT_READY
        values = list(window)
        fast_sum = math.fsum(values[-self._fast :])
        slow_sum = math.fsum(values)
        difference = fast_sum / self._fast - slow_sum / slow
        self._scaled = self._slow_weight * fast_sum - self._fast_weight * slow_sum
        # Headroom: values may double before the bound needs a new ceiling.
        ceiling = 2.0 * max(values)
        tolerance = 4.0 * _UNIT_ROUNDOFF * ceiling * slow * (slow + 10) * (self._fast + 11)
        if min(values) >= _SMALLEST and tolerance < _LARGEST_TOLERANCE:
            self._remaining = slow
            self._ceiling = ceiling
            self._tolerance = tolerance
            self._negative_tolerance = -tolerance
        else:
            self._remaining = 0
        if difference > 0:
            return 1.0
        if difference < 0:
            return -1.0
        return 0.0 if difference == 0 else _NOT_READY


@dataclass(slots=True)
class _SymbolState:
    windows: CrossingWindows
    last_opened_at: datetime = _BEFORE_ANY_BAR
    previous_sign: float = _NOT_READY
    direction: SignalDirection = SignalDirection.FLAT


_LONG = SignalDirection.LONG
_SHORT = SignalDirection.SHORT


class SmaCrossStrategy:
    """Go long on a golden cross, short on a death cross; always in the market after that.

    A reversal is one order for twice the size (close and re-open), so the position is
    always +quantity, -quantity or flat before the first cross.
    """

    name = "sma_cross"

    def __init__(self, parameters: SmaCrossParameters | None = None) -> None:
        self.parameters = parameters or SmaCrossParameters()
        self._states: dict[str, _SymbolState] = {}

    def _state(self, symbol: str) -> _SymbolState:
        state = self._states.get(symbol)
        if state is None:
            state = _SymbolState(CrossingWindows(self.parameters.fast, self.parameters.slow))
            self._states[symbol] = state
        return state

    def direction(self, symbol: str) -> SignalDirection:
        """Return the position direction the strategy holds for a symbol."""
        return self._state(symbol).direction

    def warm_up(self, bar: BarClosed) -> None:
        """Replay a historical bar, updating averages and the held direction, without orders."""
        self.on_bar(bar)  # the very state changes of a live bar; the intents are dropped

    def on_bar(self, bar: BarClosed) -> list[OrderIntent]:
        """Return a buy on a golden cross, a sell on a death cross, else nothing."""
        # Runs once per bar in every backtest, so the crossing test is inline.
        state = self._states.get(bar.symbol) or self._state(bar.symbol)
        opened_at = bar.opened_at
        if opened_at <= state.last_opened_at:
            return []  # a redelivered or out-of-order bar: never trade it twice
        state.last_opened_at = opened_at
        sign = state.windows.push(bar.close)
        previous = state.previous_sign
        state.previous_sign = sign
        # NaN (not warm yet) fails every comparison, so the first signs never cross.
        if previous <= 0.0 < sign:
            target = _LONG
        elif previous >= 0.0 > sign:
            target = _SHORT
        else:
            return []
        if target is state.direction:
            return []
        return [self._reversal(state, bar, target)]

    def _reversal(
        self, state: _SymbolState, bar: BarClosed, target: SignalDirection
    ) -> OrderIntent:
        """Return the order that takes the position to ``target`` and remember the direction."""
        size = self.parameters.quantity
        quantity = size if state.direction is SignalDirection.FLAT else 2 * size
        state.direction = target
        long = target is SignalDirection.LONG
        return OrderIntent(
            symbol=bar.symbol,
            side=Side.BUY if long else Side.SELL,
            quantity=quantity,
            reference_price=bar.close,
            confidence=1.0,
            reason=(
                f"{'golden' if long else 'death'} cross: SMA({self.parameters.fast}) crossed "
                f"{'above' if long else 'below'} "
                f"SMA({self.parameters.slow}) at close {bar.close}"
            ),
            target=target,
        )
