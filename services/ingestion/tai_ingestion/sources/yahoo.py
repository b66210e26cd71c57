"""Yahoo Finance through the ``yfinance`` library (history and polling of recent bars).

``yfinance`` talks to Yahoo with its own HTTP session, so the library call is the seam:
``history`` defaults to ``yfinance.Ticker(ticker).history(...)`` run in a worker thread,
and tests inject a function returning recorded frames. Yahoo offers 1m, 5m, 15m, 1h and 1d
intervals (4h is not offered); frames are indexed by bar open time in the exchange's zone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import pandas as pd

from tai_events.market import Timeframe
from tai_ingestion.errors import (
    InvalidDataError,
    SourceTimeoutError,
    SourceUnavailableError,
    UnsupportedRequestError,
)
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.models import RawBar
from tai_ingestion.sources.base import closed_rows, in_range

INTERVALS = {
    Timeframe.M1: "1m",
    Timeframe.M5: "5m",
    Timeframe.M15: "15m",
    Timeframe.H1: "1h",
    Timeframe.D1: "1d",
}
COLUMNS = ("Open", "High", "Low", "Close", "Volume")

HistoryFunction = Callable[[str, datetime, datetime, str], pd.DataFrame]


def yfinance_history(ticker: str, start: datetime, end: datetime, interval: str) -> pd.DataFrame:
    """Download bars with yfinance (raises on network failure; empty frame when none)."""
    import yfinance  # type: ignore[import-untyped]  # noqa: PLC0415 - heavy, only when used

    frame: pd.DataFrame = yfinance.Ticker(ticker).history(
        start=start, end=end, interval=interval, auto_adjust=False, raise_errors=True
    )
    return frame


class YFinanceSource:
    """History and polling from Yahoo Finance."""

    name = "yfinance"

    def __init__(
        self,
        instruments: InstrumentMap,
        *,
        history: HistoryFunction = yfinance_history,
        timeout_seconds: float = 30.0,
    ) -> None:
        self._instruments = instruments
        self._history = history
        self._timeout = timeout_seconds

    async def fetch_history(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> list[RawBar]:
        """Return the bars opened in [start, end)."""
        ticker = self._instruments.get(symbol).yfinance_ticker
        if ticker is None:
            raise UnsupportedRequestError(self.name, f"{symbol} has no Yahoo ticker")
        if timeframe not in INTERVALS:
            raise UnsupportedRequestError(self.name, f"no {timeframe.value} interval")
        try:
            frame = await asyncio.wait_for(
                asyncio.to_thread(self._history, ticker, start, end, INTERVALS[timeframe]),
                self._timeout,
            )
        except TimeoutError as error:
            raise SourceTimeoutError(self.name, f"{ticker} history timed out") from error
        except (OSError, RuntimeError, ValueError, KeyError) as error:
            raise SourceUnavailableError(
                self.name, f"{ticker} history failed: {error!r}"
            ) from error
        return in_range(frame_rows(frame, source=self.name), start, end)

    async def poll_recent(
        self, symbol: str, timeframe: Timeframe, since: datetime, now: datetime
    ) -> list[RawBar]:
        """Return the closed bars opened at or after ``since``."""
        return closed_rows(await self.fetch_history(symbol, timeframe, since, now), timeframe, now)


def frame_rows(frame: object, *, source: str = YFinanceSource.name) -> list[RawBar]:
    """Turn a yfinance history frame into raw rows (times stay in their zone until validated)."""
    if not isinstance(frame, pd.DataFrame):
        raise InvalidDataError(source, f"expected a DataFrame, got {type(frame).__name__}")
    if frame.empty:
        return []
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise InvalidDataError(source, f"frame lacks columns {missing}")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise InvalidDataError(source, "frame is not indexed by time")
    return [
        RawBar(number, stamp.to_pydatetime(), open_, high, low, close, volume)
        for number, (stamp, open_, high, low, close, volume) in enumerate(
            zip(frame.index, *(frame[column] for column in COLUMNS), strict=True)
        )
    ]
