"""The classic moving-average crossover: the reference strategy for parity checks."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

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


@dataclass(slots=True)
class _SymbolState:
    exact: _ExactWindowSums
    last_opened_at: datetime | None = None
    previous_difference: float | None = None
    direction: SignalDirection = SignalDirection.FLAT


_EXACT_UNIT_LIMIT = 900
"""Largest power-of-two scale whose inverse keeps float(sum) * unit normal (sums < 2**100)."""


class _ExactWindowSums:
    """Exact O(1) running sums of the last ``fast`` and ``slow`` closes.

    Every float is a dyadic rational, so each close is held as an integer scaled by a common
    power of two; integer sums are exact and ``int / int`` is correctly rounded, so
    ``fast_mean()`` and ``slow_mean()`` are bit-identical to ``math.fsum(window) / length``
    while costing O(1) per bar instead of O(slow).
    """

    __slots__ = (
        "_fast",
        "_fast_sum",
        "_inverse_unit",
        "_scale",
        "_slow",
        "_slow_sum",
        "_terms",
        "_unit",
    )

    def __init__(self, fast: int, slow: int) -> None:
        self._fast = fast
        self._slow = slow
        self._terms: deque[int] = deque()
        self._scale = 0  # every term is value * 2**scale
        self._unit = 1.0  # 2**-scale: exact, so float(total) * unit rounds only once
        self._inverse_unit = 1.0  # 2**scale, 0.0 once beyond the exact float range
        self._fast_sum = 0
        self._slow_sum = 0

    def push(self, value: float) -> float | None:
        """Add the newest close; return ``fast_mean() - slow_mean()`` once ``slow`` are held."""
        # Fast path: value * 2**scale is exact (a power-of-two product) and, when it is an
        # integer, it is the very term the slow path would compute.
        inverse_unit = self._inverse_unit
        scaled = value * inverse_unit
        term = int(scaled) if -1e300 < scaled < 1e300 else 0  # False for NaN and inf
        if term != scaled or not inverse_unit:
            term = self._rescale_for(value)
        terms = self._terms
        terms.append(term)
        fast = self._fast
        slow = self._slow
        count = len(terms)
        if count > slow:  # the steady state: both windows full, one term leaves each
            fast_sum = self._fast_sum + term - terms[-fast - 1]
            slow_sum = self._slow_sum + term - terms.popleft()
        else:
            fast_sum = self._fast_sum + term
            slow_sum = self._slow_sum + term
            if count > fast:
                fast_sum -= terms[-fast - 1]
            if count < slow:
                self._fast_sum = fast_sum
                self._slow_sum = slow_sum
                return None
        self._fast_sum = fast_sum
        self._slow_sum = slow_sum
        unit = self._unit
        if unit:
            return float(fast_sum) * unit / fast - float(slow_sum) * unit / slow
        return self.fast_mean() - self.slow_mean()

    def _rescale_for(self, value: float) -> int:
        numerator, denominator = value.as_integer_ratio()
        exponent = denominator.bit_length() - 1
        if exponent > self._scale:
            shift = exponent - self._scale
            self._terms = deque(term << shift for term in self._terms)
            self._fast_sum <<= shift
            self._slow_sum <<= shift
            self._scale = exponent
            exact = exponent <= _EXACT_UNIT_LIMIT
            self._unit = 2.0**-exponent if exact else 0.0
            self._inverse_unit = 2.0**exponent if exact else 0.0
        return int(numerator << (self._scale - exponent))

    def _total(self, scaled: int) -> float:
        # float(int) is correctly rounded and scaling by a power of two is exact (no
        # subnormals below the limit), so this equals the correctly rounded scaled / 2**scale.
        if self._unit:
            return float(scaled) * self._unit
        return scaled / (1 << self._scale)

    def fast_mean(self) -> float:
        """Return ``math.fsum(last fast closes) / fast``."""
        return self._total(self._fast_sum) / self._fast

    def slow_mean(self) -> float:
        """Return ``math.fsum(last slow closes) / slow``."""
        return self._total(self._slow_sum) / self._slow


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
            state = _SymbolState(_ExactWindowSums(self.parameters.fast, self.parameters.slow))
            self._states[symbol] = state
        return state

    def direction(self, symbol: str) -> SignalDirection:
        """Return the position direction the strategy holds for a symbol."""
        return self._state(symbol).direction

    def _cross(self, state: _SymbolState, bar: BarClosed) -> SignalDirection | None:
        """Advance the averages by one bar; return the direction of a cross on it, if any."""
        opened_at = bar.opened_at
        last = state.last_opened_at
        if last is not None and opened_at <= last:
            return None  # a redelivered or out-of-order bar: never trade it twice
        state.last_opened_at = opened_at
        # Bit-identical to math.fsum(window) / length (see _ExactWindowSums), in O(1).
        difference = state.exact.push(bar.close)
        if difference is None:
            return None
        previous = state.previous_difference
        state.previous_difference = difference
        if previous is None:
            return None
        if previous <= 0 < difference:
            return SignalDirection.LONG
        if previous >= 0 > difference:
            return SignalDirection.SHORT
        return None

    def warm_up(self, bar: BarClosed) -> None:
        """Replay a historical bar, updating averages and the held direction, without orders."""
        state = self._states.get(bar.symbol) or self._state(bar.symbol)
        target = self._cross(state, bar)
        if target is not None:
            state.direction = target

    def on_bar(self, bar: BarClosed) -> list[OrderIntent]:
        """Return a buy on a golden cross, a sell on a death cross, else nothing."""
        state = self._states.get(bar.symbol) or self._state(bar.symbol)
        target = self._cross(state, bar)
        if target is None or target is state.direction:
            return []
        size = self.parameters.quantity
        quantity = size if state.direction is SignalDirection.FLAT else 2 * size
        state.direction = target
        side = Side.BUY if target is SignalDirection.LONG else Side.SELL
        cross = "golden" if target is SignalDirection.LONG else "death"
        return [
            OrderIntent(
                symbol=bar.symbol,
                side=side,
                quantity=quantity,
                reference_price=bar.close,
                confidence=1.0,
                reason=(
                    f"{cross} cross: SMA({self.parameters.fast}) crossed "
                    f"{'above' if target is SignalDirection.LONG else 'below'} "
                    f"SMA({self.parameters.slow}) at close {bar.close}"
                ),
                target=target,
            )
        ]
