"""IG Markets REST API (https://labs.ig.com/rest-trading-api-reference).

Login: ``POST /session`` (Version 2) with the ``X-IG-API-KEY`` header and
``{"identifier", "password"}``; the ``CST`` and ``X-SECURITY-TOKEN`` response headers
authenticate later calls, and the body names the Lightstreamer endpoint and account.
History: ``GET /prices/{epic}`` (Version 3) with ``resolution``, ``from``, ``to`` (ISO
local-free times), ``pageSize`` and ``pageNumber``; each price carries ``snapshotTimeUTC``
and bid/ask for open, high, low and close, plus ``lastTradedVolume``. Bars are built from
the mid (bid+ask)/2. An expired token answers 401 (we log in again once); a spent
historical-data allowance answers 403 ``error.public-api.exceeded-...-allowance``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from tai_events.market import Timeframe
from tai_ingestion.errors import (
    AuthenticationError,
    InvalidDataError,
    RateLimitedError,
    UnsupportedRequestError,
)
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.models import RawBar
from tai_ingestion.sources.base import JsonHttpClient, closed_rows, json_body

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


@dataclass(frozen=True, slots=True)
class IgSession:
    """Tokens of a logged-in session, and where to stream from."""

    cst: str
    security_token: str
    account_id: str
    lightstreamer_endpoint: str


class IgRestClient:
    """Log in and call the IG REST API with the session tokens."""

    source = "ig"

    def __init__(
        self, http: JsonHttpClient, api_key: SecretStr, identifier: str, password: SecretStr
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._identifier = identifier
        self._password = password
        self._session: IgSession | None = None

    async def session(self) -> IgSession:
        """Return the current session, logging in first if needed."""
        if self._session is None:
            self._session = await self._login()
        return self._session

    def forget_session(self) -> None:
        """Drop the session tokens, so the next call logs in again."""
        self._session = None

    async def _login(self) -> IgSession:
        response = await self._http.post(
            "/session",
            json={"identifier": self._identifier, "password": self._password.get_secret_value()},
            headers={**self._base_headers(), "Version": "2"},
        )
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

    def _base_headers(self) -> dict[str, str]:
        return {
            "X-IG-API-KEY": self._api_key.get_secret_value(),
            "Accept": "application/json; charset=UTF-8",
        }

    async def get(self, path: str, params: dict[str, str | int], version: str) -> Any:
        """GET with the session tokens; on an expired token, log in again once."""
        for attempt in range(2):
            session = await self.session()
            headers = {
                **self._base_headers(),
                "Version": version,
                "CST": session.cst,
                "X-SECURITY-TOKEN": session.security_token,
            }
            try:
                response = await self._http.get(path, params=params, headers=headers)
            except AuthenticationError as error:
                if "allowance" in error.detail:
                    raise RateLimitedError(self.source, error.detail[:200]) from error
                if attempt == 0:
                    self._session = None
                    continue
                raise
            return json_body(self.source, response)
        raise AuthenticationError(self.source, "session refused after a fresh login")


class IgSource:
    """Bar history and polling from IG's ``/prices`` endpoint."""

    name = "ig"

    def __init__(self, client: IgRestClient, instruments: InstrumentMap) -> None:
        self._client = client
        self._instruments = instruments

    async def fetch_history(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> list[RawBar]:
        """Return the bars opened in [start, end), following every page."""
        epic = self._instruments.get(symbol).ig_epic
        if epic is None:
            raise UnsupportedRequestError(self.name, f"{symbol} has no IG epic")
        rows: list[RawBar] = []
        page = 1
        while page <= MAX_PAGES:
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
            rows.extend(parse_prices(payload, first_row=len(rows)))
            if page >= _total_pages(payload):
                break
            page += 1
        return [
            row for row in rows if not isinstance(row.timestamp, datetime) or row.timestamp < end
        ]

    async def poll_recent(
        self, symbol: str, timeframe: Timeframe, since: datetime, now: datetime
    ) -> list[RawBar]:
        """Return the closed bars opened at or after ``since``."""
        return closed_rows(await self.fetch_history(symbol, timeframe, since, now), timeframe, now)


def parse_prices(payload: Any, *, first_row: int = 0, source: str = "ig") -> list[RawBar]:
    """Turn a ``/prices`` (v3) payload into raw rows of mid prices, oldest first."""
    if not isinstance(payload, dict) or not isinstance(payload.get("prices"), list):
        raise InvalidDataError(source, "payload has no 'prices' list")
    rows: list[RawBar] = []
    for index, price in enumerate(payload["prices"], start=first_row):
        if not isinstance(price, dict):
            raise InvalidDataError(source, f"price {index} is not an object")
        stamp = price.get("snapshotTimeUTC")
        timestamp: datetime | str
        try:
            timestamp = datetime.fromisoformat(str(stamp)).replace(tzinfo=UTC)
        except ValueError:
            timestamp = str(stamp)
        rows.append(
            RawBar(
                index,
                timestamp,
                _mid(price.get("openPrice")),
                _mid(price.get("highPrice")),
                _mid(price.get("lowPrice")),
                _mid(price.get("closePrice")),
                price.get("lastTradedVolume") or 0.0,
            )
        )
    return rows


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
