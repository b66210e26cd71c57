"""Trading calendars: when an instrument trades, so missing bars can be told from closed markets.

FX trades 24/5, from Sunday 22:00 UTC to Friday 22:00 UTC (the usual New York 17:00 roll,
fixed in UTC here). Equities trade their regular session, 09:30-16:00 in the exchange's
timezone, Monday to Friday; exchange holidays are not modelled, so a holiday shows up as a
flagged gap, never as a rejection.

A bar is expected when the market is open at one of its sample moments (every minute of bars
up to an hour, every 30 minutes of longer ones). Both calendars also answer for arrays of bar
opens at once (``bars_expected``, microseconds since the epoch, UTC) with the same samples,
so a million bars' gaps are found at numpy speed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from tai_events.market import Timeframe
from tai_ingestion.instruments import AssetClass, Instrument

MICROSECOND = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND_US = 1_000_000
_DAY_US = 86_400 * _SECOND_US
_WEEK_US = 7 * _DAY_US
_THURSDAY = 3
"""The epoch's weekday (Monday = 0): day ``d`` after the epoch is weekday ``(d + 3) % 7``."""
_FX_CLOSED_FROM = (4 * 24 + 22) * 3600 * _SECOND_US  # Friday 22:00, from Monday 00:00
_FX_CLOSED_UNTIL = (6 * 24 + 22) * 3600 * _SECOND_US  # Sunday 22:00
_SAMPLES_PER_CHUNK = 2_000_000

Microseconds = npt.NDArray[np.int64]
"""Moments as integer microseconds since the Unix epoch, UTC (the whole datetime range fits)."""


def to_microseconds(moment: datetime) -> int:
    """Return an aware ``moment`` as integer microseconds since the epoch."""
    return (moment - EPOCH) // MICROSECOND


def from_microseconds(microseconds: int) -> datetime:
    """Return the aware UTC datetime ``microseconds`` after the epoch."""
    return EPOCH + timedelta(microseconds=microseconds)


FX_WEEK_OPEN = (6, time(22, 0))  # Sunday 22:00 UTC
FX_WEEK_CLOSE = (4, time(22, 0))  # Friday 22:00 UTC


class TradingCalendar(Protocol):
    """Which bars an instrument should have."""

    def bar_expected(self, opened_at: datetime, timeframe: Timeframe) -> bool:
        """Return True if the market trades during some part of this bar."""
        ...


class ForexCalendar:
    """FX: open from Sunday 22:00 UTC until Friday 22:00 UTC."""

    def __repr__(self) -> str:
        return "ForexCalendar()"

    def is_open(self, moment: datetime) -> bool:
        """Return True if the FX market trades at ``moment``."""
        moment = moment.astimezone(UTC)
        weekday, clock = moment.weekday(), moment.time()
        if weekday == 5:
            return False
        if weekday == 6:
            return clock >= FX_WEEK_OPEN[1]
        if weekday == 4:
            return clock < FX_WEEK_CLOSE[1]
        return True

    def bar_expected(self, opened_at: datetime, timeframe: Timeframe) -> bool:
        """Return True if any minute of the bar falls in the trading week."""
        return _any_open(self.is_open, opened_at, timeframe)

    def bars_expected(self, opens: Microseconds, timeframe: Timeframe) -> npt.NDArray[np.bool_]:
        """Return ``bar_expected`` of each bar open (microseconds since the epoch, UTC)."""
        step, samples = _sampling(timeframe)
        # The closed weekend is one interval of the week: every sample of a bar falls in it
        # exactly when its first and last samples do.
        first = (opens + _THURSDAY * _DAY_US) % _WEEK_US
        last = first + (samples - 1) * step
        return ~((first >= _FX_CLOSED_FROM) & (last < _FX_CLOSED_UNTIL))


class EquityCalendar:
    """A regular equity session in the exchange's timezone, Monday to Friday."""

    def __init__(
        self,
        timezone: str = "America/New_York",
        opens: time = time(9, 30),
        closes: time = time(16, 0),
    ) -> None:
        self._zone = ZoneInfo(timezone)
        self._opens = opens
        self._closes = closes

    def __repr__(self) -> str:
        return f"EquityCalendar({self._zone.key!r}, {self._opens}, {self._closes})"

    def is_open(self, moment: datetime) -> bool:
        """Return True during the regular session."""
        local = moment.astimezone(self._zone)
        return local.weekday() < 5 and self._opens <= local.time() < self._closes

    def bar_expected(self, opened_at: datetime, timeframe: Timeframe) -> bool:
        """Return True if the session overlaps the bar (daily bars: every weekday)."""
        if timeframe is Timeframe.D1:
            # Daily bars open at 00:00 UTC, so the UTC date is the session's date.
            return opened_at.astimezone(UTC).weekday() < 5
        return _any_open(self.is_open, opened_at, timeframe)

    def bars_expected(self, opens: Microseconds, timeframe: Timeframe) -> npt.NDArray[np.bool_]:
        """Return ``bar_expected`` of each bar open (microseconds since the epoch, UTC)."""
        if timeframe is Timeframe.D1:
            return _weekday(opens) < 5
        import pandas as pd  # noqa: PLC0415 - time zone conversion of many moments

        step, samples = _sampling(timeframe)
        opens_at = _time_of_day(self._opens)
        closes_at = _time_of_day(self._closes)
        expected = np.zeros(len(opens), dtype=np.bool_)
        rows = max(1, _SAMPLES_PER_CHUNK // samples)
        for begin in range(0, len(opens), rows):
            moments = (opens[begin : begin + rows, None] + np.arange(samples) * step).ravel()
            local = (
                pd.DatetimeIndex(moments.view("datetime64[us]"))
                .tz_localize(UTC)
                .tz_convert(self._zone)
                .tz_localize(None)
                .as_unit("us")
                .asi8
            )
            clock = local % _DAY_US
            open_now = (_weekday(local) < 5) & (clock >= opens_at) & (clock < closes_at)
            expected[begin : begin + rows] = open_now.reshape(-1, samples).any(axis=1)
        return expected


def _any_open(
    is_open: Callable[[datetime], bool], opened_at: datetime, timeframe: Timeframe
) -> bool:
    step = (
        timedelta(minutes=1) if timeframe.duration <= timedelta(hours=1) else timedelta(minutes=30)
    )
    moment = opened_at
    end = opened_at + timeframe.duration
    while moment < end:
        if is_open(moment):
            return True
        moment += step
    return False


def _sampling(timeframe: Timeframe) -> tuple[int, int]:
    """Return the spacing of a bar's sample moments (microseconds) and their number."""
    step = (
        timedelta(minutes=1) if timeframe.duration <= timedelta(hours=1) else timedelta(minutes=30)
    )
    return step // MICROSECOND, math.ceil(timeframe.duration / step)


def _weekday(moments: Microseconds) -> Microseconds:
    return (moments // _DAY_US + _THURSDAY) % 7


def _time_of_day(clock: time) -> int:
    return ((clock.hour * 60 + clock.minute) * 60 + clock.second) * _SECOND_US + clock.microsecond


def expected_bars(
    calendar: TradingCalendar, opens: Microseconds, timeframe: Timeframe
) -> npt.NDArray[np.bool_]:
    """Return whether ``calendar`` expects each bar open (vectorised for the known calendars)."""
    if isinstance(calendar, ForexCalendar | EquityCalendar):
        return calendar.bars_expected(opens, timeframe)
    return np.fromiter(
        (calendar.bar_expected(from_microseconds(value), timeframe) for value in opens.tolist()),
        dtype=np.bool_,
        count=len(opens),
    )


def calendar_for(instrument: Instrument) -> TradingCalendar:
    """Return the calendar of an instrument's market."""
    if instrument.asset_class is AssetClass.FX:
        return ForexCalendar()
    return EquityCalendar(instrument.exchange_timezone)


def missing_bar_opens(
    calendar: TradingCalendar,
    timeframe: Timeframe,
    start: datetime,
    end: datetime,
    present: set[datetime],
) -> list[datetime]:
    """Return the aligned bar opens in [start, end) the calendar expects but ``present`` lacks."""
    present_opens = np.fromiter(map(to_microseconds, present), dtype=np.int64, count=len(present))
    missing = missing_bar_opens_at(
        calendar, timeframe, to_microseconds(start), to_microseconds(end), present_opens
    )
    return [from_microseconds(value) for value in missing.tolist()]


def missing_bar_opens_at(
    calendar: TradingCalendar,
    timeframe: Timeframe,
    start: int,
    end: int,
    present: Microseconds,
    *,
    chunk: int = 1_000_000,
) -> Microseconds:
    """Return the aligned bar opens in [start, end) the calendar expects but ``present`` lacks.

    Moments are microseconds since the epoch; the bar grid is walked ``chunk`` opens at a time.
    """
    duration = timeframe.duration // MICROSECOND
    first = int(align_microseconds(np.array([start], dtype=np.int64), timeframe)[0])
    if first < start:
        first += duration
    known = np.sort(present)
    found: list[Microseconds] = []
    for begin in range(first, end, duration * chunk):
        grid = np.arange(begin, min(end, begin + duration * chunk), duration, dtype=np.int64)
        place = np.minimum(np.searchsorted(known, grid), max(len(known) - 1, 0))
        absent = grid if not len(known) else grid[known[place] != grid]
        if len(absent):
            found.append(absent[expected_bars(calendar, absent, timeframe)])
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def align(moment: datetime, timeframe: Timeframe) -> datetime:
    """Return the open of the UTC-aligned bar of ``timeframe`` containing ``moment``.

    Bars are aligned to the Unix epoch in UTC: 4h bars open at 00, 04, ... 20 UTC and daily
    bars at 00:00 UTC.
    """
    moment = moment.astimezone(UTC)
    seconds = int(timeframe.duration.total_seconds())
    epoch_seconds = int(moment.timestamp())
    return datetime.fromtimestamp(epoch_seconds - epoch_seconds % seconds, UTC)


def align_microseconds(moments: Microseconds, timeframe: Timeframe) -> Microseconds:
    """Return ``align`` of each moment (microseconds since the epoch, UTC).

    As ``align``: whole seconds towards zero first, then down onto the timeframe's grid.
    """
    seconds: Microseconds = np.where(moments >= 0, moments // _SECOND_US, -(-moments // _SECOND_US))
    period = int(timeframe.duration.total_seconds())
    return (seconds - seconds % period) * _SECOND_US
