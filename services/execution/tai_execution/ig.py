"""IG Markets REST trading adapter (https://labs.ig.com/rest-trading-api-reference).

Session: ``POST /session`` (Version 2) with the ``X-IG-API-KEY`` header and
``{"identifier", "password"}``; the ``CST`` and ``X-SECURITY-TOKEN`` response headers
authenticate every later call. An expired or invalid token answers 401
(``error.security.client-token-invalid`` / ``...oauth-token-invalid``): we log in again once
and repeat the call (a refused request has no effect, so repeating it is safe).

Dealing: ``POST /positions/otc`` (Version 2) opens a position and answers only a
``dealReference``; the outcome is read from ``GET /confirms/{dealReference}`` (``dealStatus``
ACCEPTED or REJECTED with a ``reason``). We set the ``dealReference`` ourselves, derived from
our order id, so a request whose answer was lost (timeout, 5xx, broken connection) is never
blindly resent: we ask ``/confirms`` first and resend only when IG answers
``error.confirms.deal-not-found``. Closing is ``POST /positions/otc`` with the ``_method: DELETE``
header (Version 1); resting orders are ``/workingorders/otc``.

Allowances: IG caps requests per minute (trading and non-trading separately, per account and
per API key); going over answers 403 ``error.public-api.exceeded-...-allowance``. A client-side
sliding window keeps us under the configured caps and the 403 is reported as rate limiting.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from tai_events.orders import OrderType, Side
from tai_execution.paper import WorkingOrder

DEMO_BASE_URL = "https://demo-api.ig.com/gateway/deal"
LIVE_BASE_URL = "https://api.ig.com/gateway/deal"
DEAL_NOT_FOUND = "error.confirms.deal-not-found"
TOKEN_INVALID_CODES = frozenset(
    {"error.security.client-token-invalid", "error.security.oauth-token-invalid"}
)

ERROR_MESSAGES: dict[str, str] = {
    "error.security.invalid-details": "IG refused the identifier or password",
    "error.security.api-key-invalid": "IG refused the API key",
    "error.security.api-key-disabled": "the IG API key is disabled",
    "error.security.account-suspended": "the IG account is suspended",
    "error.security.client-token-invalid": "the IG session token is invalid or expired",
    "error.public-api.exceeded-api-key-allowance": "IG API key request allowance exceeded",
    "error.public-api.exceeded-account-allowance": "IG account request allowance exceeded",
    "error.public-api.exceeded-account-trading-allowance": "IG trading allowance exceeded",
    "error.public-api.failure.stockbroking-not-supported": "IG: stockbroking is not supported",
    "error.confirms.deal-not-found": "IG has no deal with this reference",
    "validation.pattern.invalid.dealReference": "the deal reference does not match IG's pattern",
}

REJECTION_REASONS: dict[str, str] = {
    "ACCOUNT_NOT_ENABLED_TO_TRADING": "the account is not enabled to trade",
    "ATTACHED_ORDER_LEVEL_ERROR": "the stop or limit level is not valid",
    "CLOSING_ONLY_TRADES_ACCEPTED_ON_THIS_MARKET": "the market only accepts closing trades",
    "DUPLICATE_ORDER_ERROR": "IG already has an order with this deal reference",
    "INSTRUMENT_NOT_FOUND": "the instrument (epic) is unknown to IG",
    "INSUFFICIENT_FUNDS": "insufficient funds",
    "LEVEL_TOLERANCE_ERROR": "the price moved beyond the level tolerance",
    "MARGIN_ERROR": "insufficient margin",
    "MARKET_CLOSED": "the market is closed",
    "MARKET_CLOSED_WITH_EDITS": "the market is closed (edits allowed)",
    "MARKET_OFFLINE": "the market is offline",
    "MARKET_UNAVAILABLE_TO_CLIENT": "the market is not available to this account",
    "MAX_AUTO_SIZE_EXCEEDED": "the order exceeds the maximum automatic size",
    "MINIMUM_ORDER_SIZE_ERROR": "the order is below the minimum size",
    "OPPOSING_POSITIONS_NOT_ALLOWED": "opposing positions are not allowed",
    "ORDER_DECLINED": "IG declined the order",
    "POSITION_NOT_AVAILABLE_TO_CLOSE": "the position cannot be closed",
    "SIZE_INCREMENT": "the size is not a multiple of the size increment",
    "STOP_REQUIRED_ERROR": "this market requires a stop",
    "WRONG_SIDE_OF_MARKET": "the level is on the wrong side of the market",
    "UNKNOWN": "IG rejected the deal without a reason",
}


class IgError(Exception):
    """An IG call failed; ``code`` is IG's ``errorCode`` (or our own for transport faults)."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail or ERROR_MESSAGES.get(code, code)
        super().__init__(f"{code}: {self.detail}")


class IgAuthenticationError(IgError):
    """IG refused the credentials or the session."""


class IgRateLimitedError(IgError):
    """An IG request allowance is spent (HTTP 403 ``exceeded-...-allowance``)."""


class IgUnavailableError(IgError):
    """IG did not answer usefully (5xx, broken connection): the outcome is unknown."""


class IgTimeoutError(IgUnavailableError):
    """IG did not answer in time: the outcome is unknown."""


class IgRequestRejectedError(IgError):
    """IG refused the request itself (4xx validation): nothing happened."""


def deal_reference(order_id: str) -> str:
    """Return the IG ``dealReference`` of an order (stable, within IG's 30-character pattern)."""
    return "TAI" + hashlib.sha256(order_id.encode("utf-8")).hexdigest()[:24].upper()


def rejection_text(reason: str) -> str:
    """Return a clear explanation of an IG confirm ``reason``."""
    return f"IG rejected the deal: {REJECTION_REASONS.get(reason, reason)} ({reason})"


@dataclass(frozen=True, slots=True)
class IgCredentials:
    """API key, identifier and password (from the environment only)."""

    api_key: SecretStr
    identifier: str
    password: SecretStr


class SlidingWindowLimiter:
    """Admit at most ``limit`` calls per ``period`` seconds; callers over it wait their turn."""

    def __init__(
        self,
        limit: int,
        period: float = 60.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a limiter needs a positive limit and period")
        self.limit = limit
        self.period = period
        self._monotonic = monotonic
        self._sleep = sleep
        self._calls: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more call fits in the window, then record it."""
        async with self._lock:
            while True:
                now = self._monotonic()
                while self._calls and now - self._calls[0] >= self.period:
                    self._calls.popleft()
                if len(self._calls) < self.limit:
                    self._calls.append(now)
                    return
                await self._sleep(self.period - (now - self._calls[0]))


@dataclass(frozen=True, slots=True)
class DealConfirmation:
    """IG's verdict on a deal (``GET /confirms/{dealReference}``)."""

    deal_reference: str
    deal_status: str
    reason: str
    deal_id: str | None
    level: float | None
    size: float | None
    direction: str | None
    epic: str | None

    @property
    def accepted(self) -> bool:
        """Return True when IG accepted the deal."""
        return self.deal_status == "ACCEPTED"

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> DealConfirmation:
        """Parse a confirms payload."""
        return cls(
            deal_reference=str(payload.get("dealReference", "")),
            deal_status=str(payload.get("dealStatus", "")),
            reason=str(payload.get("reason") or "UNKNOWN"),
            deal_id=_optional_str(payload.get("dealId")),
            level=_optional_float(payload.get("level")),
            size=_optional_float(payload.get("size")),
            direction=_optional_str(payload.get("direction")),
            epic=_optional_str(payload.get("epic")),
        )


@dataclass(frozen=True, slots=True)
class IgPosition:
    """One open IG position (``GET /positions``)."""

    deal_id: str
    deal_reference: str
    epic: str
    direction: str
    size: float
    level: float


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """An IG account's balance (``GET /accounts``)."""

    account_id: str
    currency: str
    balance: float
    available: float
    profit_loss: float


class IgClient:
    """Logs in and sends authenticated, rate-limited requests to the IG REST API."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: IgCredentials,
        *,
        trading_limiter: SlidingWindowLimiter,
        non_trading_limiter: SlidingWindowLimiter,
    ) -> None:
        self._http = http
        self._credentials = credentials
        self._trading = trading_limiter
        self._non_trading = non_trading_limiter
        self._tokens: tuple[str, str] | None = None
        self.account_id = ""
        self.logins = 0

    def _headers(self, version: str) -> dict[str, str]:
        return {
            "X-IG-API-KEY": self._credentials.api_key.get_secret_value(),
            "Accept": "application/json; charset=UTF-8",
            "Content-Type": "application/json; charset=UTF-8",
            "Version": version,
        }

    async def login(self) -> None:
        """Open a session (``POST /session`` v2) and keep its CST and X-SECURITY-TOKEN."""
        await self._non_trading.acquire()
        response = await self._send(
            "POST",
            "/session",
            headers=self._headers("2"),
            json={
                "identifier": self._credentials.identifier,
                "password": self._credentials.password.get_secret_value(),
            },
        )
        if response.status_code != 200:
            code = _error_code(response)
            raise IgAuthenticationError(code, ERROR_MESSAGES.get(code, f"login failed: {code}"))
        cst, token = response.headers.get("CST"), response.headers.get("X-SECURITY-TOKEN")
        if not cst or not token:
            raise IgAuthenticationError("login", "IG answered without CST/X-SECURITY-TOKEN")
        body = response.json()
        self.account_id = str(body.get("currentAccountId", "")) if isinstance(body, dict) else ""
        self._tokens = (cst, token)
        self.logins += 1

    async def request(
        self,
        method: str,
        path: str,
        *,
        version: str,
        trading: bool = False,
        json: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send an authenticated call and return its JSON body; map IG failures to errors."""
        for attempt in range(2):
            if self._tokens is None:
                await self.login()
            if self._tokens is None:
                raise IgAuthenticationError("login", "IG answered the login without session tokens")
            cst, token = self._tokens
            await (self._trading if trading else self._non_trading).acquire()
            headers = {**self._headers(version), "CST": cst, "X-SECURITY-TOKEN": token}
            headers.update(extra_headers or {})
            response = await self._send(method, path, headers=headers, json=json)
            if response.status_code == 401 and attempt == 0:
                # The session expired: IG did nothing with the request, so log in and repeat.
                self._tokens = None
                continue
            return _body_or_raise(response)
        raise IgAuthenticationError("session", "IG refused the session after a fresh login")

    async def _send(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        json: Mapping[str, Any] | None,
    ) -> httpx.Response:
        try:
            return await self._http.request(method, path, headers=headers, json=json)
        except httpx.TimeoutException as error:
            raise IgTimeoutError("timeout", f"{method} {path} timed out") from error
        except httpx.TransportError as error:
            raise IgUnavailableError("transport", f"{method} {path}: {error}") from error


class IgBroker:
    """Opens and closes OTC positions and resting orders on IG; reads positions and balance."""

    name = "ig"

    def __init__(
        self,
        client: IgClient,
        epics: Mapping[str, str],
        *,
        currency_code: str,
        contract_sizes: Mapping[str, float] | None = None,
        max_attempts: int = 3,
        confirm_attempts: int = 5,
        confirm_delay_seconds: float = 0.2,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.epics = dict(epics)
        self.symbols = {epic: symbol for symbol, epic in self.epics.items()}
        self.currency_code = currency_code
        self.contract_sizes = dict(contract_sizes or {})
        self.max_attempts = max_attempts
        self.confirm_attempts = confirm_attempts
        self.confirm_delay_seconds = confirm_delay_seconds
        self._sleep = sleep

    def epic(self, symbol: str) -> str:
        """Return the IG epic of a symbol."""
        try:
            return self.epics[symbol]
        except KeyError:
            raise IgRequestRejectedError(
                "unknown_epic", f"no IG epic configured for {symbol}"
            ) from None

    def size(self, symbol: str, quantity: float) -> float:
        """Return the IG deal size for a quantity in units."""
        return quantity / self.contract_sizes.get(symbol, 1.0)

    def quantity(self, symbol: str, size: float) -> float:
        """Return units for an IG deal size."""
        return size * self.contract_sizes.get(symbol, 1.0)

    def open_request(self, order: WorkingOrder) -> dict[str, Any]:
        """Return the ``POST /positions/otc`` (v2) body of a market entry with its bracket."""
        body: dict[str, Any] = {
            "epic": self.epic(order.symbol),
            "expiry": "-",
            "direction": order.side.value,
            "size": self.size(order.symbol, order.quantity),
            "orderType": "MARKET",
            "timeInForce": "FILL_OR_KILL",
            "guaranteedStop": False,
            # Without a bracket, forceOpen false nets an opposite order against the open
            # position (as our ledger does); IG requires forceOpen true when levels are attached.
            "forceOpen": order.stop_loss is not None or order.take_profit is not None,
            "currencyCode": self.currency_code,
            "dealReference": deal_reference(order.order_id),
        }
        # IG manages the bracket itself (one-cancels-other) when the levels ride on the entry.
        if order.stop_loss is not None:
            body["stopLevel"] = order.stop_loss
        if order.take_profit is not None:
            body["limitLevel"] = order.take_profit
        return body

    async def open_position(self, order: WorkingOrder) -> DealConfirmation:
        """Open a position and return IG's confirmation; never deal the same order twice."""
        if order.order_type is not OrderType.MARKET:
            return await self.create_working_order(order)
        return await self._deal("/positions/otc", "2", self.open_request(order), order.order_id)

    async def create_working_order(self, order: WorkingOrder) -> DealConfirmation:
        """Place a LIMIT or STOP resting order (``POST /workingorders/otc`` v2)."""
        level = order.limit_price if order.order_type is OrderType.LIMIT else order.stop_price
        body: dict[str, Any] = {
            "epic": self.epic(order.symbol),
            "expiry": "-",
            "direction": order.side.value,
            "size": self.size(order.symbol, order.quantity),
            "level": level,
            "type": order.order_type.value,
            "timeInForce": "GOOD_TILL_CANCELLED",
            "guaranteedStop": False,
            "currencyCode": self.currency_code,
            "dealReference": deal_reference(order.order_id),
        }
        if order.stop_loss is not None:
            body["stopLevel"] = order.stop_loss
        if order.take_profit is not None:
            body["limitLevel"] = order.take_profit
        return await self._deal("/workingorders/otc", "2", body, order.order_id)

    async def close_position(
        self, symbol: str, side: Side, quantity: float, order_id: str
    ) -> DealConfirmation:
        """Close (part of) a position with a market deal in ``side``'s direction."""
        body = {
            "epic": self.epic(symbol),
            "expiry": "-",
            "direction": side.value,
            "size": self.size(symbol, quantity),
            "orderType": "MARKET",
            "timeInForce": "FILL_OR_KILL",
        }
        # IG's close takes no dealReference; the confirm is read from the one it returns.
        payload = await self.client.request(
            "POST",
            "/positions/otc",
            version="1",
            trading=True,
            json=body,
            extra_headers={"_method": "DELETE"},
        )
        reference = str(payload.get("dealReference", "")) if isinstance(payload, dict) else ""
        if not reference:
            raise IgUnavailableError("close", f"close of {order_id} answered no dealReference")
        return await self.await_confirmation(reference)

    async def _deal(
        self, path: str, version: str, body: Mapping[str, Any], order_id: str
    ) -> DealConfirmation:
        reference = deal_reference(order_id)
        last_error: IgError | None = None
        for _attempt in range(self.max_attempts):
            try:
                await self.client.request("POST", path, version=version, trading=True, json=body)
            except IgUnavailableError as error:
                # The deal may or may not exist: ask IG before even thinking of resending.
                last_error = error
                confirmation = await self.confirmation(reference)
                if confirmation is not None:
                    return confirmation
                continue
            return await self.await_confirmation(reference)
        raise last_error or IgUnavailableError("deal", f"no attempt was made for {order_id}")

    async def confirmation(self, reference: str) -> DealConfirmation | None:
        """Return IG's confirmation of a deal, or None when IG has never seen it."""
        try:
            payload = await self.client.request("GET", f"/confirms/{reference}", version="1")
        except IgRequestRejectedError as error:
            if error.code == DEAL_NOT_FOUND:
                return None
            raise
        return DealConfirmation.from_payload(payload)

    async def await_confirmation(self, reference: str) -> DealConfirmation:
        """Read a just-sent deal's confirmation (IG may take a moment to publish it)."""
        for attempt in range(self.confirm_attempts):
            confirmation = await self.confirmation(reference)
            if confirmation is not None:
                return confirmation
            if attempt + 1 < self.confirm_attempts:
                await self._sleep(self.confirm_delay_seconds)
        raise IgUnavailableError(DEAL_NOT_FOUND, f"no confirmation for {reference} yet")

    async def open_positions(self) -> list[IgPosition]:
        """Return every open position (``GET /positions`` v2)."""
        payload = await self.client.request("GET", "/positions", version="2")
        positions = []
        for item in payload.get("positions", []) if isinstance(payload, dict) else []:
            position, market = item.get("position", {}), item.get("market", {})
            positions.append(
                IgPosition(
                    deal_id=str(position.get("dealId", "")),
                    deal_reference=str(position.get("dealReference", "")),
                    epic=str(market.get("epic", "")),
                    direction=str(position.get("direction", "")),
                    size=float(position.get("size", 0.0)),
                    level=float(position.get("level", 0.0)),
                )
            )
        return positions

    async def positions(self) -> dict[str, float]:
        """Return the signed net quantity per symbol held at IG (unknown epics by epic)."""
        net: dict[str, float] = {}
        for position in await self.open_positions():
            symbol = self.symbols.get(position.epic, position.epic)
            sign = 1.0 if position.direction == Side.BUY.value else -1.0
            net[symbol] = net.get(symbol, 0.0) + sign * self.quantity(symbol, position.size)
        return net

    async def working_orders(self) -> list[dict[str, Any]]:
        """Return IG's resting orders (``GET /workingorders`` v2), each as IG describes it."""
        payload = await self.client.request("GET", "/workingorders", version="2")
        orders = payload.get("workingOrders", []) if isinstance(payload, dict) else []
        return [dict(order.get("workingOrderData", {})) for order in orders]

    async def balance(self) -> AccountBalance:
        """Return the current account's balance (``GET /accounts`` v1)."""
        payload = await self.client.request("GET", "/accounts", version="1")
        accounts = payload.get("accounts", []) if isinstance(payload, dict) else []
        wanted = self.client.account_id
        for account in accounts:
            if not wanted or account.get("accountId") == wanted or account.get("preferred"):
                balance = account.get("balance", {})
                return AccountBalance(
                    account_id=str(account.get("accountId", "")),
                    currency=str(account.get("currency", "")),
                    balance=float(balance.get("balance", 0.0)),
                    available=float(balance.get("available", 0.0)),
                    profit_loss=float(balance.get("profitLoss", 0.0)),
                )
        raise IgRequestRejectedError("no_account", "IG listed no account for this session")


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"http_{response.status_code}"
    if isinstance(body, dict) and body.get("errorCode"):
        return str(body["errorCode"])
    return f"http_{response.status_code}"


def _body_or_raise(response: httpx.Response) -> Any:
    status = response.status_code
    if 200 <= status < 300:
        return response.json() if response.content else {}
    code = _error_code(response)
    if status == 401:
        raise IgAuthenticationError(code)
    if status == 403 and "allowance" in code:
        raise IgRateLimitedError(code)
    if status == 403:
        raise IgAuthenticationError(code)
    if status >= 500:
        raise IgUnavailableError(code, f"IG answered HTTP {status} ({code})")
    raise IgRequestRejectedError(code)


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _optional_float(value: object) -> float | None:
    return None if value is None else float(str(value))
