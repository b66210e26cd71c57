"""Alpha Vantage over its documented REST API (https://www.alphavantage.co/documentation/).

FX: ``FX_INTRADAY`` (from_symbol, to_symbol, interval) and ``FX_DAILY``; equities:
``TIME_SERIES_INTRADAY`` (symbol, interval) and ``TIME_SERIES_DAILY``. Series are objects
keyed by timestamp text with ``"1. open" .. "4. close"`` (and ``"5. volume"`` for equities),
in the timezone named by the ``Meta Data``. A throttled call answers HTTP 200 with a
``Note`` or ``Information`` text instead of data; an invalid call with ``Error Message``.
Intraday intervals are 1min, 5min, 15min, 30min and 60min; 4h bars are not offered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tai_core.clock import Clock
from tai_events.market import Timeframe
from tai_ingestion.errors import InvalidDataError, RateLimitedError, UnsupportedRequestError
from tai_ingestion.instruments import AssetClass, Instrument, InstrumentMap
from tai_ingestion.models import RawBar
from tai_ingestion.sources.base import (
    JsonHttpClient,
    RequestBudget,
    closed_rows,
    in_range,
    json_body,
)

INTERVALS = {
    Timeframe.M1: "1min",
    Timeframe.M5: "5min",
    Timeframe.M15: "15min",
    Timeframe.H1: "60min",
}


class AlphaVantageSource:
    """History and polling from Alpha Vantage, within its request budget."""

    name = "alpha_vantage"

    def __init__(
        self,
        http: JsonHttpClient,
        api_key: str,
        instruments: InstrumentMap,
        clock: Clock,
        *,
        requests_per_minute: int | None = 5,
        requests_per_day: int | None = 25,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._instruments = instruments
        self._budget = RequestBudget(
            self.name, clock, per_minute=requests_per_minute, per_day=requests_per_day
        )

    async def fetch_history(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> list[RawBar]:
        """Return the bars opened in [start, end) (full output size, filtered locally)."""
        rows = await self._series(self._instruments.get(symbol), timeframe)
        return in_range(rows, start, end)

    async def poll_recent(
        self, symbol: str, timeframe: Timeframe, since: datetime, now: datetime
    ) -> list[RawBar]:
        """Return the closed bars opened at or after ``since``."""
        rows = await self._series(self._instruments.get(symbol), timeframe, compact=True)
        return closed_rows(in_range(rows, since, None), timeframe, now)

    def _params(
        self, instrument: Instrument, timeframe: Timeframe, *, compact: bool
    ) -> dict[str, str]:
        params = {"apikey": self._api_key, "outputsize": "compact" if compact else "full"}
        daily = timeframe is Timeframe.D1
        if not daily and timeframe not in INTERVALS:
            raise UnsupportedRequestError(self.name, f"no {timeframe.value} series")
        if instrument.asset_class is AssetClass.FX:
            if instrument.base_currency is None or instrument.quote_currency is None:
                raise UnsupportedRequestError(self.name, f"{instrument.symbol} has no currencies")
            params |= {
                "from_symbol": instrument.base_currency,
                "to_symbol": instrument.quote_currency,
            }
            params["function"] = "FX_DAILY" if daily else "FX_INTRADAY"
        else:
            if instrument.alpha_vantage_symbol is None:
                raise UnsupportedRequestError(self.name, f"{instrument.symbol} is not mapped")
            params["symbol"] = instrument.alpha_vantage_symbol
            params["function"] = "TIME_SERIES_DAILY" if daily else "TIME_SERIES_INTRADAY"
        if not daily:
            params["interval"] = INTERVALS[timeframe]
        return params

    async def _series(
        self, instrument: Instrument, timeframe: Timeframe, *, compact: bool = False
    ) -> list[RawBar]:
        params = self._params(instrument, timeframe, compact=compact)
        self._budget.acquire()
        response = await self._http.get("/query", params=params)
        return parse_series(json_body(self.name, response), source=self.name)


def parse_series(payload: Any, *, source: str = AlphaVantageSource.name) -> list[RawBar]:
    """Turn an Alpha Vantage time-series payload into raw rows, oldest first (times in UTC)."""
    if not isinstance(payload, dict):
        raise InvalidDataError(source, "payload is not a JSON object")
    for key in ("Note", "Information"):
        if key in payload:
            raise RateLimitedError(source, str(payload[key])[:200])
    if "Error Message" in payload:
        raise InvalidDataError(source, str(payload["Error Message"])[:200])
    series_key = next((key for key in payload if key.startswith("Time Series")), None)
    meta = payload.get("Meta Data")
    if series_key is None or not isinstance(meta, dict):
        raise InvalidDataError(source, f"no time series in payload (keys: {sorted(payload)})")
    series = payload[series_key]
    if not isinstance(series, dict):
        raise InvalidDataError(source, "time series is not an object")
    zone = _zone(meta, source)
    rows: list[RawBar] = []
    for index, (stamp, values) in enumerate(sorted(series.items())):
        if not isinstance(values, dict):
            raise InvalidDataError(source, f"entry {stamp!r} is not an object")
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            rows.append(RawBar(index, stamp, None, None, None, None, None))
            continue
        rows.append(
            RawBar(
                index,
                moment.replace(tzinfo=zone).astimezone(UTC),
                values.get("1. open"),
                values.get("2. high"),
                values.get("3. low"),
                values.get("4. close"),
                values.get("5. volume", 0.0),
            )
        )
    return rows


def _zone(meta: dict[str, Any], source: str) -> ZoneInfo:
    name = next((str(value) for key, value in meta.items() if key.endswith("Time Zone")), "UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidDataError(source, f"unknown time zone {name!r}") from error
