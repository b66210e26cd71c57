"""Yahoo Finance through the ``yfinance`` library (history and polling of recent bars).

``yfinance`` talks to Yahoo with its own HTTP session, so the library calls are the seams:
``history`` defaults to ``yfinance.Ticker(ticker).history(...)`` and ``splits`` to
``yfinance.Ticker(ticker).splits``, run in a worker thread; tests inject functions returning
recorded frames or raising yfinance's own exceptions.

What Yahoo serves (yfinance 1.7): 1m bars for the last 30 days, at most 7 days per request;
5m and 15m bars for the last 60 days; 1h bars for the last 730 days; daily bars without limit;
no 4h bars. Requests are split and clipped to those limits here, and a span wholly outside
them is refused without asking. Frames are indexed by bar open time in the exchange's zone.

Failures: with exceptions surfaced, yfinance raises ``YFRateLimitError`` (HTTP 429),
``YFPricesMissingError`` (no prices: an empty span, or Yahoo's stated reason such as a range
past its limits), ``YFTzMissingError`` (no timezone: an unknown ticker, or the metadata call
failed) and other ``YFException`` subclasses, all plain ``Exception`` subclasses; network
failures are ``OSError`` subclasses. Each becomes a SourceError so failover moves on.

Conventions (tai_ingestion.instruments): prices are as traded (``auto_adjust=False`` leaves
Yahoo's split adjustment, which is undone with the ticker's splits), regular hours
(``prepost=False``); daily bars are labelled by their date in the exchange's zone; equity
hourly bars, which Yahoo opens at the session's :30, are built from 15-minute bars on the UTC
hour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from tai_core.clock import Clock
from tai_events.market import Timeframe
from tai_ingestion.errors import (
    InvalidDataError,
    RateLimitedError,
    SourceError,
    SourceTimeoutError,
    SourceUnavailableError,
    UnsupportedRequestError,
)
from tai_ingestion.instruments import (
    AssetClass,
    Instrument,
    InstrumentMap,
    PriceAdjustment,
    PriceBasis,
    TradingHours,
)
from tai_ingestion.models import RawBar
from tai_ingestion.sources.base import aggregate_rows, closed_rows, daily_label, in_range

INTERVALS = {
    Timeframe.M1: "1m",
    Timeframe.M5: "5m",
    Timeframe.M15: "15m",
    Timeframe.H1: "1h",
    Timeframe.D1: "1d",
}
LOOKBACK = {
    "1m": timedelta(days=30),
    "5m": timedelta(days=60),
    "15m": timedelta(days=60),
    "1h": timedelta(days=730),
}
"""How far back Yahoo serves each intraday interval."""
SPAN_PER_REQUEST = {"1m": timedelta(days=7)}
"""The longest span Yahoo serves in one request."""
LOOKBACK_MARGIN = timedelta(hours=1)
"""Kept clear of the lookback edge, which moves while a request is in flight."""
SPLITS_TTL = timedelta(hours=12)
COLUMNS = ("Open", "High", "Low", "Close", "Volume")

HistoryFunction = Callable[[str, datetime, datetime, str], pd.DataFrame]
SplitsFunction = Callable[[str], pd.Series]


def yfinance_history(ticker: str, start: datetime, end: datetime, interval: str) -> pd.DataFrame:
    """Download unadjusted regular-hours bars; raise yfinance's exceptions instead of logging."""
    import yfinance  # type: ignore[import-untyped]  # noqa: PLC0415 - heavy, only when used

    # Surface errors as exceptions (the ``raise_errors`` argument is deprecated in 1.x).
    yfinance.config.debug.hide_exceptions = False
    frame: pd.DataFrame = yfinance.Ticker(ticker).history(
        start=start, end=end, interval=interval, auto_adjust=False, prepost=False, actions=False
    )
    return frame


def yfinance_splits(ticker: str) -> pd.Series:
    """Return every split of ``ticker`` (ratio by effective date, in the exchange's zone)."""
    import yfinance  # noqa: PLC0415 - heavy, only when used

    yfinance.config.debug.hide_exceptions = False
    splits: pd.Series = yfinance.Ticker(ticker).splits
    return splits


class YFinanceSource:
    """History and polling from Yahoo Finance."""

    name = "yfinance"

    def __init__(
        self,
        instruments: InstrumentMap,
        clock: Clock,
        *,
        history: HistoryFunction = yfinance_history,
        splits: SplitsFunction = yfinance_splits,
        timeout_seconds: float = 30.0,
    ) -> None:
        self._instruments = instruments
        self._clock = clock
        self._history = history
        self._splits = splits
        self._timeout = timeout_seconds
        self._split_cache: dict[str, tuple[datetime, pd.Series]] = {}

    def price_basis(self, instrument: Instrument) -> PriceBasis:
        """Return as traded, regular hours (Yahoo's split adjustment is undone here)."""
        del instrument
        return PriceBasis(PriceAdjustment.AS_TRADED, TradingHours.REGULAR)

    async def fetch_history(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> list[RawBar]:
        """Return the bars opened in [start, end), asking within Yahoo's limits."""
        instrument = self._instruments.get(symbol)
        ticker = instrument.yfinance_ticker
        if ticker is None:
            raise UnsupportedRequestError(self.name, f"{symbol} has no Yahoo ticker")
        if timeframe not in INTERVALS:
            raise UnsupportedRequestError(self.name, f"no {timeframe.value} interval")
        interval = _interval_for(instrument, timeframe)
        frames = [
            await self._call(self._history, ticker, window_start, window_end, interval)
            for window_start, window_end in self._windows(interval, start, end)
        ]
        frame = _concat(frames)
        if instrument.asset_class is AssetClass.EQUITY and not frame.empty:
            frame = unsplit(frame, await self._ticker_splits(ticker))
        rows = frame_rows(frame, source=self.name, daily=timeframe is Timeframe.D1)
        if interval != INTERVALS[timeframe]:
            rows = aggregate_rows(rows, timeframe)
        return in_range(rows, start, end)

    async def poll_recent(
        self, symbol: str, timeframe: Timeframe, since: datetime, now: datetime
    ) -> list[RawBar]:
        """Return the closed bars opened at or after ``since``."""
        return closed_rows(await self.fetch_history(symbol, timeframe, since, now), timeframe, now)

    def _windows(
        self, interval: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        lookback = LOOKBACK.get(interval)
        if lookback is not None:
            earliest = self._clock.now() - lookback + LOOKBACK_MARGIN
            if end <= earliest:
                raise UnsupportedRequestError(
                    self.name,
                    f"Yahoo serves {interval} bars for the last {lookback.days} days only "
                    f"(asked from {start.isoformat()})",
                )
            start = max(start, earliest)
        step = SPAN_PER_REQUEST.get(interval)
        if step is None:
            return [(start, end)]
        windows = []
        while start < end:
            windows.append((start, min(start + step, end)))
            start += step
        return windows

    async def _ticker_splits(self, ticker: str) -> pd.Series:
        now = self._clock.now()
        cached = self._split_cache.get(ticker)
        if cached is not None and now - cached[0] < SPLITS_TTL:
            return cached[1]
        splits = await self._call(self._splits, ticker)
        if not isinstance(splits, pd.Series):
            raise InvalidDataError(self.name, f"{ticker} splits are not a series")
        self._split_cache[ticker] = (now, splits)
        return splits

    async def _call(self, function: Callable[..., Any], ticker: str, *arguments: Any) -> Any:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(function, ticker, *arguments), self._timeout
            )
        except TimeoutError as error:
            raise SourceTimeoutError(self.name, f"{ticker} timed out") from error
        except Exception as error:  # the library's own exceptions are plain Exceptions
            failure = yfinance_failure(error, ticker)
            if failure is None:
                return pd.DataFrame()  # Yahoo has no prices in the span: no rows
            raise failure from error


def yfinance_failure(error: Exception, ticker: str, source: str = "yfinance") -> SourceError | None:
    """Return the SourceError for a yfinance failure; None when it only means "no prices"."""
    from yfinance import exceptions  # noqa: PLC0415 - the library is loaded once it has failed

    if isinstance(error, exceptions.YFRateLimitError):
        return RateLimitedError(source, f"{ticker}: Yahoo answered 429 (too many requests)")
    if isinstance(error, exceptions.YFPricesMissingError):
        if error.yahoo_reason is None:
            return None
        # Yahoo said why (e.g. the range is past what it serves for the interval).
        return UnsupportedRequestError(source, f"{ticker}: {error.yahoo_reason}")
    if isinstance(error, exceptions.YFTzMissingError):
        # An unknown ticker, or Yahoo's metadata call failed (it also happens when throttled).
        return SourceUnavailableError(source, f"{ticker}: no timezone from Yahoo ({error})")
    if isinstance(error, exceptions.YFInvalidPeriodError):
        return UnsupportedRequestError(source, str(error))
    return SourceUnavailableError(source, f"{ticker} history failed: {error!r}")


def _interval_for(instrument: Instrument, timeframe: Timeframe) -> str:
    if instrument.asset_class is AssetClass.EQUITY and timeframe is Timeframe.H1:
        # Yahoo opens equity hours at the session's :30; the UTC-hour bars come from 15m.
        return "15m"
    return INTERVALS[timeframe]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    filled = [frame for frame in frames if isinstance(frame, pd.DataFrame) and not frame.empty]
    if not filled:
        return frames[0] if frames else pd.DataFrame()
    if len(filled) == 1:
        return filled[0]
    joined = pd.concat(filled)
    return joined[~joined.index.duplicated(keep="first")]


def unsplit(frame: pd.DataFrame, splits: pd.Series) -> pd.DataFrame:
    """Undo Yahoo's split adjustment: prices before each later split times its ratio.

    Yahoo divides the prices before a split by its ratio (and multiplies volumes by it); a
    bar traded on a date before a split's effective date is restored by the product of the
    ratios of every split after it. Dates are compared in the exchange's zone.
    """
    if splits.empty or not isinstance(frame.index, pd.DatetimeIndex):
        return frame
    split_dates = [
        (pd.Timestamp(when).tz_convert(frame.index.tz).date() if frame.index.tz else when.date())
        for when in splits.index
    ]
    ratios = [float(ratio) for ratio in splits.to_numpy()]
    bar_dates = frame.index.date
    factors = [
        _product(
            ratio for split_date, ratio in zip(split_dates, ratios, strict=True) if day < split_date
        )
        for day in bar_dates
    ]
    restored = frame.copy()
    for column in ("Open", "High", "Low", "Close"):
        if column in restored.columns:
            restored[column] = restored[column].astype(float) * factors
    if "Volume" in restored.columns:
        restored["Volume"] = restored["Volume"].astype(float) / factors
    return restored


def _product(values: Any) -> float:
    result = 1.0
    for value in values:
        if value > 0:
            result *= value
    return result


def frame_rows(
    frame: object, *, source: str = YFinanceSource.name, daily: bool = False
) -> list[RawBar]:
    """Turn a yfinance history frame into raw rows.

    Intraday times stay in their zone until validated; a daily bar is labelled 00:00 UTC of
    its date in the exchange's zone (Yahoo's FX days start at London midnight, 23:00 UTC in
    summer; its equity days at New York midnight).
    """
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
        RawBar(
            number,
            daily_label(stamp.date()) if daily else stamp.to_pydatetime(),
            open_,
            high,
            low,
            close,
            volume,
        )
        for number, (stamp, open_, high, low, close, volume) in enumerate(
            zip(frame.index, *(frame[column] for column in COLUMNS), strict=True)
        )
    ]
