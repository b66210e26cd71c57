"""Bars from ticks, and higher timeframes from lower ones.

Boundaries: every bar is aligned on the UTC grid of its timeframe, counted from the Unix
epoch: 1m, 5m, 15m and 1h bars open on whole minutes/hours, 4h bars at 00, 04, ... 20 UTC,
and daily bars at 00:00 UTC (not at the FX 22:00 UTC roll, and not at an exchange's local
midnight). A bar covers [opened_at, closed_at).

Publishing: a bar is emitted exactly once, when it closes: on the first tick at or after
its end (plus the grace window), or when the clock-driven ``on_time`` reaches that moment.

Late ticks: a tick for a bar that has already been emitted is counted and dropped. With a
grace window ``g``, a bar stays amendable until ``closed_at + g``, so a tick up to ``g``
late still lands in its own bar; the bar is then emitted at ``closed_at + g``.

Derivation: only the smallest configured timeframe is built from ticks; each higher one is
aggregated from it (open of the first, close of the last, max high, min low, summed
volume), so 1m -> 5m -> 1h and 1m -> 1h, and ticks -> 1m -> 5m and ticks -> 5m, agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tai_events.market import BarClosed, TickReceived, Timeframe
from tai_ingestion.calendar import align
from tai_ingestion.metrics import IngestionMetrics


@dataclass(slots=True)
class _Partial:
    opened_at: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float

    def add(self, high: float, low: float, close: float, volume: float) -> None:
        self.high = max(self.high, high)
        self.low = min(self.low, low)
        self.close = close
        self.volume += volume

    def bar(self, symbol: str, timeframe: Timeframe, source: str) -> BarClosed:
        return BarClosed(
            symbol=symbol,
            timeframe=timeframe,
            opened_at=self.opened_at,
            closed_at=self.opened_at + timeframe.duration,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            volume=self.volume,
            source=source,
        )


def check_derivable(timeframes: Iterable[Timeframe]) -> list[Timeframe]:
    """Return the timeframes shortest first; refuse a set where one does not divide the next."""
    ordered = sorted(set(timeframes), key=lambda timeframe: timeframe.duration)
    if not ordered:
        raise ValueError("at least one timeframe is needed")
    base = ordered[0].duration
    for timeframe in ordered[1:]:
        if timeframe.duration % base:
            raise ValueError(f"{timeframe.value} is not a multiple of {ordered[0].value}")
    return ordered


def aggregate(bars: Sequence[BarClosed], timeframe: Timeframe) -> list[BarClosed]:
    """Aggregate time-ordered bars of one symbol into ``timeframe`` bars (batch form)."""
    aggregator: BarAggregator | None = None
    result: list[BarClosed] = []
    for bar in bars:
        if aggregator is None:
            aggregator = BarAggregator(bar.symbol, timeframe, source=bar.source)
        result.extend(aggregator.on_bar(bar))
    if aggregator is not None:
        result.extend(aggregator.flush())
    return result


class BarAggregator:
    """Build ``timeframe`` bars from closed bars of a shorter timeframe, incrementally."""

    def __init__(self, symbol: str, timeframe: Timeframe, *, source: str) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.source = source
        self._partial: _Partial | None = None
        self._last_closed_at: datetime | None = None

    def on_bar(self, bar: BarClosed) -> list[BarClosed]:
        """Take a closed lower-timeframe bar; return the bar it completes, if any."""
        if bar.timeframe.duration >= self.timeframe.duration:
            raise ValueError(f"cannot derive {self.timeframe.value} from {bar.timeframe.value}")
        if self._last_closed_at is not None and bar.opened_at < self._last_closed_at:
            return []  # belongs to a bar already emitted
        emitted: list[BarClosed] = []
        opened_at = align(bar.opened_at, self.timeframe)
        if self._partial is not None and self._partial.opened_at != opened_at:
            emitted.extend(self.flush())
        if self._partial is None:
            self._partial = _Partial(opened_at, bar.open, bar.high, bar.low, bar.close, bar.volume)
        else:
            self._partial.add(bar.high, bar.low, bar.close, bar.volume)
        if bar.closed_at >= opened_at + self.timeframe.duration:
            emitted.extend(self.flush())
        return emitted

    def on_time(self, now: datetime) -> list[BarClosed]:
        """Emit the open bar if its period ended by ``now``."""
        if self._partial is not None and self._partial.opened_at + self.timeframe.duration <= now:
            return self.flush()
        return []

    def flush(self) -> list[BarClosed]:
        """Emit the open bar now, complete or not (end of data)."""
        if self._partial is None:
            return []
        bar = self._partial.bar(self.symbol, self.timeframe, self.source)
        self._partial = None
        self._last_closed_at = bar.closed_at
        return [bar]


class BarBuilder:
    """Aggregate one symbol's ticks (mid prices) into bars of the configured timeframes."""

    def __init__(
        self,
        symbol: str,
        timeframes: Iterable[Timeframe],
        *,
        source: str,
        grace: timedelta = timedelta(0),
        metrics: IngestionMetrics | None = None,
    ) -> None:
        if grace < timedelta(0):
            raise ValueError("grace must not be negative")
        ordered = check_derivable(timeframes)
        self.symbol = symbol
        self.base = ordered[0]
        self.source = source
        self.grace = grace
        self._metrics = metrics
        self._aggregators = [BarAggregator(symbol, tf, source=source) for tf in ordered[1:]]
        self._open: dict[datetime, _Partial] = {}
        self._closed_until: datetime | None = None
        self.late_ticks_dropped = 0
        self.late_ticks_amended = 0

    def on_tick(self, tick: TickReceived) -> list[BarClosed]:
        """Take a tick; return the bars it closes (every timeframe, in closing order)."""
        if tick.symbol != self.symbol:
            raise ValueError(f"builder of {self.symbol} got a tick for {tick.symbol}")
        emitted = self.on_time(tick.quoted_at)
        opened_at = align(tick.quoted_at, self.base)
        if self._closed_until is not None and opened_at < self._closed_until:
            self.late_ticks_dropped += 1
            self._count_late("dropped")
            return emitted
        price = tick.last if tick.last is not None else tick.mid
        if not math.isfinite(price) or price <= 0:
            return emitted
        partial = self._open.get(opened_at)
        if partial is None:
            self._open[opened_at] = _Partial(opened_at, price, price, price, price, tick.volume)
        else:
            if any(other > opened_at for other in self._open):
                self.late_ticks_amended += 1
                self._count_late("amended")
            partial.add(price, price, price, tick.volume)
        return emitted

    def on_time(self, now: datetime) -> list[BarClosed]:
        """Close every bar whose end plus the grace window is at or before ``now``."""
        emitted: list[BarClosed] = []
        for opened_at in sorted(self._open):
            if opened_at + self.base.duration + self.grace > now:
                break
            bar = self._open.pop(opened_at).bar(self.symbol, self.base, self.source)
            self._closed_until = bar.closed_at
            emitted.extend(self._cascade(bar))
        # Higher bars whose period ended with no lower bar to close them.
        horizon = now - self.grace
        for aggregator in self._aggregators:
            emitted.extend(aggregator.on_time(horizon))
        return emitted

    def _cascade(self, bar: BarClosed) -> list[BarClosed]:
        emitted = [bar]
        for aggregator in self._aggregators:
            emitted.extend(aggregator.on_bar(bar))
        return emitted

    def flush(self) -> list[BarClosed]:
        """Close every open bar now (end of a replay or shutdown)."""
        emitted: list[BarClosed] = []
        for opened_at in sorted(self._open):
            bar = self._open.pop(opened_at).bar(self.symbol, self.base, self.source)
            self._closed_until = bar.closed_at
            emitted.extend(self._cascade(bar))
        for aggregator in self._aggregators:
            emitted.extend(aggregator.flush())
        return emitted

    def _count_late(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.late_ticks.labels(symbol=self.symbol, outcome=outcome).inc()
