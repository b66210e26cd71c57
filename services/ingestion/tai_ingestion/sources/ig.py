"""IG Markets REST API (https://labs.ig.com/rest-trading-api-reference).

Login: ``POST /session`` (Version 2) with the ``X-IG-API-KEY`` header and
``{"identifier", "password"}``; the ``CST`` and ``X-SECURITY-TOKEN`` response headers
authenticate later calls, and the body names the Lightstreamer endpoint and account.
History: ``GET /prices/{epic}`` (Version 3) with ``resolution``, ``from``, ``to`` (ISO
local-free times), ``pageSize`` and ``pageNumber``; each price carries ``snapshotTime``
(local), ``snapshotTimeUTC`` and bid/ask for open, high, low and close, plus
``lastTradedVolume``. Bars are built from the mid (bid+ask)/2. An expired token answers 401
(we log in again once); an unknown epic 404 ``error.public-api.epic-not-found`` (or
``error.service.marketdata.instrument.epic.unavailable``).

Allowances: the key's request allowances per minute come from ``GET /operations/application``
(Version 1; the entry of our key: ``allowanceApplicationOverall``, ``allowanceAccountOverall``,
``allowanceAccountTrading``, ``allowanceAccountHistoricalData``) and are drawn from a limiter
shared with execution (same key names, Redis when configured): a request over them is refused
here (RateLimitedError, so the failover moves on) rather than answered 403
``error.public-api.exceeded-...-allowance`` by IG. Historical prices also spend a weekly
allowance of price points; every prices answer reports what is left in
``metadata.allowance`` (``remainingAllowance``, ``totalAllowance``, ``allowanceExpiry`` in
seconds until it resets). Once it is spent (or IG answers 403
``error.public-api.exceeded-account-historical-data-allowance``) prices are not asked for
again until it resets.

Conventions (tai_ingestion.instruments): daily bars are labelled by the date of their local
``snapshotTime`` (IG's FX day opens the evening before in UTC); equity bars wholly outside
the regular session are dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from tai_core.clock import Clock
from tai_events.market import Timeframe
from tai_ingestion.calendar import calendar_for
from tai_ingestion.errors import (
    AuthenticationError,
    InvalidDataError,
    RateLimitedError,
    SourceError,
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
from tai_ingestion.sources.base import JsonHttpClient, closed_rows, daily_label, json_body
from tai_store.ratelimit import RateLimiter
from tai_telemetry.logging import get_logger

DEMO_BASE_URL = "https://demo-api.ig.com/gateway/deal"
LIVE_BASE_URL = "https://api.ig.com/gateway/deal"

RESOLUTIONS = {
    Timeframe.M1: "MINUTE",
    Timeframe.M5: "MINUTE_5",
    Timeframe.M15: "MINUTE_15",
    Timeframe.H1: "HOUR",
    Timeframe.H4: "HOUR_4",
    Timeframe.D1: "DAY",
}
PAGE_SIZE = 500
MAX_PAGES = 200
ALLOWANCE_WINDOW_SECONDS = 60.0
HISTORICAL_ALLOWANCE_CODE = "error.public-api.exceeded-account-historical-data-allowance"
EPIC_NOT_FOUND_CODES = frozenset(
    {"error.public-api.epic-not-found", "error.service.marketdata.instrument.epic.unavailable"}
)
UNKNOWN_RESET_REST = timedelta(hours=6)
"""How long prices rest after IG says the weekly allowance is spent without saying when it
resets (no prices answer seen yet): long enough not to ask every minute, short of a week."""


@dataclass(frozen=True, slots=True)
class IgAllowances:
    """A key's request allowances per minute (and price points per week)."""

    application_overall: int = 60
    account_overall: int = 30
    account_trading: int = 100
    historical_points: int = 10_000

    @classmethod
    def from_applications(cls, payload: Any, api_key: str) -> IgAllowances | None:
        """Read ``GET /operations/application``: the entry of ``api_key``, else None."""
        if not isinstance(payload, list):
            return None
        for application in payload:
            if isinstance(application, dict) and application.get("apiKey") == api_key:
                defaults = cls()
                return cls(
                    application_overall=_positive(
                        application.get("allowanceApplicationOverall"),
                        defaults.application_overall,
                    ),
                    account_overall=_positive(
                        application.get("allowanceAccountOverall"), defaults.account_overall
                    ),
                    account_trading=_positive(
                        application.get("allowanceAccountTrading"), defaults.account_trading
                    ),
                    historical_points=_positive(
                        application.get("allowanceAccountHistoricalData"),
                        defaults.historical_points,
                    ),
                )
        return None


def allowance_key(api_key: str, account_id: str, kind: str) -> str:
    """Return the shared limiter's key name of one IG allowance (the same in execution).

    ``application`` counts every request made with the API key; ``non-trading`` and
    ``trading`` count the account's requests of each kind.
    """
    if kind == "application":
        return f"ig:key-{hashlib.sha256(api_key.encode()).hexdigest()[:16]}:application"
    return f"ig:account-{account_id}:{kind}"


@dataclass(frozen=True, slots=True)
class IgSession:
    """Tokens of a logged-in session, and where to stream from."""

    cst: str
    security_token: str
    account_id: str
    lightstreamer_endpoint: str


class IgRestClient:
    """Log in and call the IG REST API with the session tokens, within the key's allowances."""

    source = "ig"

    def __init__(
        self,
        http: JsonHttpClient,
        api_key: SecretStr,
        identifier: str,
        password: SecretStr,
        *,
        limiter: RateLimiter,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._identifier = identifier
        self._password = password
        self._limiter = limiter
        self._session: IgSession | None = None
        self.allowances = IgAllowances()
        self.logins = 0
        self._log = get_logger("ingestion.ig")

    async def session(self) -> IgSession:
        """Return the current session, logging in first if needed."""
        if self._session is None:
            self._session = await self._login()
            await self._read_allowances(self._session)
        return self._session

    def forget_session(self) -> None:
        """Drop the session tokens, so the next call logs in again."""
        self._session = None

    async def _login(self) -> IgSession:
        await self._take("application", "")
        response = await self._http.post(
            "/session",
            json={"identifier": self._identifier, "password": self._password.get_secret_value()},
            headers={**self._base_headers(), "Version": "2"},
        )
        self.logins += 1
        cst = response.headers.get("CST")
        token = response.headers.get("X-SECURITY-TOKEN")
        if not cst or not token:
            raise AuthenticationError(self.source, "login answered without CST/X-SECURITY-TOKEN")
        body = json_body(self.source, response)
        if not isinstance(body, dict):
            raise InvalidDataError(self.source, "login body is not an object")
        return IgSession(
            cst=cst,
            security_token=token,
            account_id=str(body.get("currentAccountId", "")),
            lightstreamer_endpoint=str(body.get("lightstreamerEndpoint", "")),
        )

    async def _read_allowances(self, session: IgSession) -> None:
        try:
            payload = await self._call(session, "/operations/application", {}, "1")
        except SourceError as error:
            self._log.warning("IG allowances not read; IG's published ones apply", error=str(error))
            return
        allowances = IgAllowances.from_applications(payload, self._api_key.get_secret_value())
        if allowances is None:
            self._log.warning("IG listed no application for this key; published allowances apply")
            return
        self.allowances = allowances

    def _base_headers(self) -> dict[str, str]:
        return {
            "X-IG-API-KEY": self._api_key.get_secret_value(),
            "Accept": "application/json; charset=UTF-8",
        }

    async def _take(self, kind: str, account_id: str) -> None:
        limit = (
            self.allowances.application_overall
            if kind == "application"
            else self.allowances.account_overall
        )
        key = allowance_key(self._api_key.get_secret_value(), account_id, kind)
        wait = await self._limiter.try_acquire(key, limit, ALLOWANCE_WINDOW_SECONDS)
        if wait > 0:
            raise RateLimitedError(
                self.source,
                f"IG {kind} allowance of {limit} requests per minute is in use",
                retry_after_seconds=wait,
            )

    async def _call(
        self, session: IgSession, path: str, params: dict[str, str | int], version: str
    ) -> Any:
        await self._take("application", session.account_id)
        await self._take("non-trading", session.account_id)
        headers = {
            **self._base_headers(),
            "Version": version,
            "CST": session.cst,
            "X-SECURITY-TOKEN": session.security_token,
        }
        try:
            response = await self._http.get(path, params=params, headers=headers)
        except (AuthenticationError, InvalidDataError) as error:
            raise _refusal(error) from error
        return json_body(self.source, response)

    async def get(self, path: str, params: dict[str, str | int], version: str) -> Any:
        """GET with the session tokens; on an expired token, log in again once."""
        for attempt in range(2):
            session = await self.session()
            try:
                return await self._call(session, path, params, version)
            except AuthenticationError:
                if attempt == 0:
                    self._session = None
                    continue
                raise
        raise AuthenticationError(self.source, "session refused after a fresh login")


class IgAllowanceError(RateLimitedError):
    """IG answered 403 ``error.public-api.exceeded-...-allowance``."""

    def __init__(self, source: str, code: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(source, f"IG refused: {code}", retry_after_seconds)
        self.code = code


def _refusal(error: SourceError) -> SourceError:
    """Map IG's 4xx error codes to what they mean for the failover."""
    code = _error_code(error.detail)
    if "allowance" in code:
        return IgAllowanceError(error.source, code)
    if code in EPIC_NOT_FOUND_CODES:
        return UnsupportedRequestError(error.source, f"IG knows no such epic ({code})")
    return error


def _error_code(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return ""
    code = body.get("errorCode") if isinstance(body, dict) else None
    return code if isinstance(code, str) else ""


@dataclass(frozen=True, slots=True)
class HistoricalAllowance:
    """What IG last said of the weekly price-point allowance."""

    remaining: int
    total: int
    resets_at: datetime


class IgSource:
    """Bar history and polling from IG's ``/prices`` endpoint, within its allowances."""

    name = "ig"

    def __init__(self, client: IgRestClient, instruments: InstrumentMap, clock: Clock) -> None:
        self._client = client
        self._instruments = instruments
        self._clock = clock
        self.historical_allowance: HistoricalAllowance | None = None
        self._spent_until: datetime | None = None

    def price_basis(self, instrument: Instrument) -> PriceBasis:
        """Return as traded, regular hours (equity bars outside the session are dropped)."""
        del instrument
        return PriceBasis(PriceAdjustment.AS_TRADED, TradingHours.REGULAR)

    async def fetch_history(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> list[RawBar]:
        """Return the bars opened in [start, end), following every page."""
        instrument = self._instruments.get(symbol)
        epic = instrument.ig_epic
        if epic is None:
            raise UnsupportedRequestError(self.name, f"{symbol} has no IG epic")
        rows: list[RawBar] = []
        page = 1
        while page <= MAX_PAGES:
            self._check_allowance()
            try:
                payload = await self._client.get(
                    f"/prices/{epic}",
                    {
                        "resolution": RESOLUTIONS[timeframe],
                        "from": _ig_time(start),
                        "to": _ig_time(end),
                        "pageSize": PAGE_SIZE,
                        "pageNumber": page,
                    },
                    version="3",
                )
            except IgAllowanceError as error:
                if error.code == HISTORICAL_ALLOWANCE_CODE:
                    raise self._spent(error) from error
                raise
            self._remember_allowance(payload)
            rows.extend(parse_prices(payload, first_row=len(rows), daily=timeframe is Timeframe.D1))
            if page >= _total_pages(payload):
                break
            page += 1
        rows = [
            row for row in rows if not isinstance(row.timestamp, datetime) or row.timestamp < end
        ]
        if instrument.asset_class is AssetClass.EQUITY and timeframe is not Timeframe.D1:
            calendar = calendar_for(instrument)
            rows = [
                row
                for row in rows
                if not isinstance(row.timestamp, datetime)
                or calendar.bar_expected(row.timestamp, timeframe)
            ]
        return rows

    async def poll_recent(
        self, symbol: str, timeframe: Timeframe, since: datetime, now: datetime
    ) -> list[RawBar]:
        """Return the closed bars opened at or after ``since``."""
        return closed_rows(await self.fetch_history(symbol, timeframe, since, now), timeframe, now)

    def _check_allowance(self) -> None:
        now = self._clock.now()
        if self._spent_until is not None and now < self._spent_until:
            raise RateLimitedError(
                self.name,
                f"IG's weekly historical-data allowance is spent until "
                f"{self._spent_until.isoformat()}",
                retry_after_seconds=(self._spent_until - now).total_seconds(),
            )

    def _spent(self, error: IgAllowanceError) -> RateLimitedError:
        now = self._clock.now()
        known = self.historical_allowance
        resets_at = known.resets_at if known is not None and known.resets_at > now else None
        self._spent_until = resets_at or now + UNKNOWN_RESET_REST
        return RateLimitedError(
            self.name,
            f"{error.code}: no prices until {self._spent_until.isoformat()}",
            retry_after_seconds=(self._spent_until - now).total_seconds(),
        )

    def _remember_allowance(self, payload: Any) -> None:
        metadata = payload.get("metadata") if isinstance(payload, dict) else None
        allowance = metadata.get("allowance") if isinstance(metadata, dict) else None
        if not isinstance(allowance, dict):
            return
        remaining = allowance.get("remainingAllowance")
        total = allowance.get("totalAllowance")
        expiry = allowance.get("allowanceExpiry")
        if not (
            isinstance(remaining, int | float)
            and isinstance(total, int | float)
            and isinstance(expiry, int | float)
        ):
            return
        resets_at = self._clock.now() + timedelta(seconds=float(expiry))
        self.historical_allowance = HistoricalAllowance(int(remaining), int(total), resets_at)
        if remaining <= 0:
            self._spent_until = resets_at


def parse_prices(
    payload: Any, *, first_row: int = 0, source: str = "ig", daily: bool = False
) -> list[RawBar]:
    """Turn a ``/prices`` (v3) payload into raw rows of mid prices, oldest first."""
    if not isinstance(payload, dict) or not isinstance(payload.get("prices"), list):
        raise InvalidDataError(source, "payload has no 'prices' list")
    rows: list[RawBar] = []
    for index, price in enumerate(payload["prices"], start=first_row):
        if not isinstance(price, dict):
            raise InvalidDataError(source, f"price {index} is not an object")
        rows.append(
            RawBar(
                index,
                _daily_time(price) if daily else _utc_time(price.get("snapshotTimeUTC")),
                _mid(price.get("openPrice")),
                _mid(price.get("highPrice")),
                _mid(price.get("lowPrice")),
                _mid(price.get("closePrice")),
                price.get("lastTradedVolume") or 0.0,
            )
        )
    return rows


def _utc_time(stamp: object) -> datetime | str:
    try:
        return datetime.fromisoformat(str(stamp)).replace(tzinfo=UTC)
    except ValueError:
        return str(stamp)


def _daily_time(price: dict[str, Any]) -> datetime | str:
    """Label a daily bar by the date of its local ``snapshotTime`` (``2024/06/03 00:00:00``)."""
    local = price.get("snapshotTime")
    if isinstance(local, str):
        try:
            return daily_label(datetime.strptime(local[:10], "%Y/%m/%d").date())  # noqa: DTZ007
        except ValueError:
            pass
    moment = _utc_time(price.get("snapshotTimeUTC"))
    return daily_label(moment.date()) if isinstance(moment, datetime) else moment


def _mid(quote: object) -> float | None:
    if not isinstance(quote, dict):
        return None
    bid, ask = quote.get("bid"), quote.get("ask")
    if isinstance(bid, int | float) and isinstance(ask, int | float):
        return (float(bid) + float(ask)) / 2.0
    last = quote.get("lastTraded")
    return float(last) if isinstance(last, int | float) else None


def _total_pages(payload: dict[str, Any]) -> int:
    page_data = payload.get("metadata", {}).get("pageData", {})
    total = page_data.get("totalPages", 1) if isinstance(page_data, dict) else 1
    return total if isinstance(total, int) and total > 0 else 1


def _ig_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _positive(value: object, default: int) -> int:
    return int(value) if isinstance(value, int | float) and value > 0 else default
