"""Alpha Vantage over its documented REST API (https://www.alphavantage.co/documentation/).

FX: ``FX_INTRADAY`` (from_symbol, to_symbol, interval) and ``FX_DAILY``; equities:
``TIME_SERIES_INTRADAY`` (symbol, interval, ``adjusted``, ``extended_hours``) and
``TIME_SERIES_DAILY``. Series are objects keyed by timestamp text (the interval's start) with
``"1. open" .. "4. close"`` (and ``"5. volume"`` for equities), in the timezone named by the
``Meta Data``. Intraday intervals are 1min, 5min, 15min, 30min and 60min; 4h bars are not
offered.

Refusals come back as HTTP 200 with text instead of data: ``Information`` (or, from older
keys, ``Note``) says either that the key's rate is spent (per minute, or per day: 25 requests
on a free key) or that the function is a premium endpoint (FX intraday and, lately, equity
intraday on a free key); ``Error Message`` says the call was invalid. A rate limit is rested
until it lifts (the next UTC day for the daily one); a premium refusal is remembered for the
function, which is then refused here without a request (it would be refused the same way
until the key changes).

Conventions (tai_ingestion.instruments): equity intraday asks ``adjusted=false`` and
``extended_hours=false`` (the defaults are adjusted and extended), so bars are as traded and
regular hours; equity hourly bars are built from 15-minute bars on the UTC hour; daily bars
are labelled 00:00 UTC of their date.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tai_core.clock import Clock
from tai_events.market import Timeframe
from tai_ingestion.errors import InvalidDataError, RateLimitedError, UnsupportedRequestError
from tai_ingestion.instruments import (
    AssetClass,
    Instrument,
    InstrumentMap,
    PriceAdjustment,
    PriceBasis,
    TradingHours,
)
from tai_ingestion.models import RawBar
from tai_ingestion.sources.base import (
    JsonHttpClient,
    RequestBudget,
    aggregate_rows,
    closed_rows,
    daily_label,
    in_range,
    json_body,
)

INTERVALS = {
    Timeframe.M1: "1min",
    Timeframe.M5: "5min",
    Timeframe.M15: "15min",
    Timeframe.H1: "60min",
}
PER_MINUTE_REST = timedelta(minutes=1)


class PremiumEndpointError(UnsupportedRequestError):
    """The key may not call this function (Alpha Vantage lists it as a premium endpoint)."""

    reason = "premium"


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
        self._clock = clock
        self._budget = RequestBudget(
            self.name, clock, per_minute=requests_per_minute, per_day=requests_per_day
        )
        self._premium_refused: dict[str, str] = {}
        """Function -> Alpha Vantage's refusal, for functions this key may not call."""

    def price_basis(self, instrument: Instrument) -> PriceBasis:
        """Return as traded, regular hours (asked for explicitly on equity intraday)."""
        del instrument
        return PriceBasis(PriceAdjustment.AS_TRADED, TradingHours.REGULAR)

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
                # The defaults are split/dividend-adjusted and 04:00-20:00: ask for neither.
                params |= {"adjusted": "false", "extended_hours": "false"}
        if not daily:
            params["interval"] = INTERVALS[_fetched_timeframe(instrument, timeframe)]
        return params

    async def _series(
        self, instrument: Instrument, timeframe: Timeframe, *, compact: bool = False
    ) -> list[RawBar]:
        params = self._params(instrument, timeframe, compact=compact)
        function = params["function"]
        if function in self._premium_refused:
            raise PremiumEndpointError(self.name, self._premium_refused[function])
        self._budget.acquire()
        response = await self._http.get("/query", params=params)
        try:
            rows = parse_series(
                json_body(self.name, response),
                source=self.name,
                daily=timeframe is Timeframe.D1,
                now=self._clock.now(),
            )
        except PremiumEndpointError as error:
            self._premium_refused[function] = f"{function} is a premium endpoint for this key"
            raise PremiumEndpointError(self.name, f"{function}: {error}") from error
        fetched = _fetched_timeframe(instrument, timeframe)
        return rows if fetched is timeframe else aggregate_rows(rows, timeframe)


def _fetched_timeframe(instrument: Instrument, timeframe: Timeframe) -> Timeframe:
    if instrument.asset_class is AssetClass.EQUITY and timeframe is Timeframe.H1:
        # Equity hours are built on the UTC hour from 15-minute bars, whichever way the
        # source aligns its own 60-minute bars on a session that opens at :30.
        return Timeframe.M15
    return timeframe


def refusal(text: str, source: str, now: datetime) -> RateLimitedError | PremiumEndpointError:
    """Classify an ``Information``/``Note`` text: a premium endpoint, or a spent rate."""
    lowered = text.lower()
    if "premium endpoint" in lowered:
        return PremiumEndpointError(source, text[:300])
    if "per minute" not in lowered and ("per day" in lowered or "daily" in lowered):
        # The daily allowance lifts with the day; asking again before then spends nothing
        # but keeps failing.
        tomorrow = daily_label(now.astimezone(UTC).date() + timedelta(days=1))
        return RateLimitedError(
            source, text[:300], retry_after_seconds=(tomorrow - now).total_seconds()
        )
    return RateLimitedError(source, text[:300], retry_after_seconds=PER_MINUTE_REST.total_seconds())


def parse_series(
    payload: Any,
    *,
    now: datetime,
    source: str = AlphaVantageSource.name,
    daily: bool = False,
) -> list[RawBar]:
    """Turn an Alpha Vantage time-series payload into raw rows, oldest first (times in UTC).

    Daily keys are dates, labelled 00:00 UTC of that date; intraday keys are converted from
    the zone the ``Meta Data`` names.
    """
    if not isinstance(payload, dict):
        raise InvalidDataError(source, "payload is not a JSON object")
    for key in ("Information", "Note"):
        if key in payload:
            raise refusal(str(payload[key]), source, now)
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
            moment = (
                daily_label(date.fromisoformat(stamp[:10]))
                if daily
                else datetime.fromisoformat(stamp).replace(tzinfo=zone).astimezone(UTC)
            )
        except ValueError:
            rows.append(RawBar(index, stamp, None, None, None, None, None))
            continue
        rows.append(
            RawBar(
                index,
                moment,
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
