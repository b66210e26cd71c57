"""Trading calendars: when an instrument trades, so missing bars can be told from closed markets.

FX trades 24/5, from Sunday 22:00 UTC to Friday 22:00 UTC (the usual New York 17:00 roll,
fixed in UTC here). Equities trade their regular session, 09:30-16:00 in the exchange's
timezone, Monday to Friday; exchange holidays are not modelled, so a holiday shows up as a
flagged gap, never as a rejection.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from tai_events.market import Timeframe
from tai_ingestion.instruments import AssetClass, Instrument

FX_WEEK_OPEN = (6, time(22, 0))  # Sunday 22:00 UTC
FX_WEEK_CLOSE = (4, time(22, 0))  # Friday 22:00 UTC


class TradingCalendar(Protocol):
    """Which bars an instrument should have."""

    def bar_expected(self, opened_at: datetime, timeframe: Timeframe) -> bool:
        """Return True if the market trades during some part of this bar."""
        ...


class ForexCalendar:
    """FX: open from Sunday 22:00 UTC until Friday 22:00 UTC."""

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
    missing: list[datetime] = []
    moment = align(start, timeframe)
    if moment < start:
        moment += timeframe.duration
    while moment < end:
        if moment not in present and calendar.bar_expected(moment, timeframe):
            missing.append(moment)
        moment += timeframe.duration
    return missing


def align(moment: datetime, timeframe: Timeframe) -> datetime:
    """Return the open of the UTC-aligned bar of ``timeframe`` containing ``moment``.

    Bars are aligned to the Unix epoch in UTC: 4h bars open at 00, 04, ... 20 UTC and daily
    bars at 00:00 UTC.
    """
    moment = moment.astimezone(UTC)
    seconds = int(timeframe.duration.total_seconds())
    epoch_seconds = int(moment.timestamp())
    return datetime.fromtimestamp(epoch_seconds - epoch_seconds % seconds, UTC)
