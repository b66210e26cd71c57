"""IG Markets REST trading adapter (https://labs.ig.com/rest-trading-api-reference).

Session: ``POST /session`` (Version 2) with the ``X-IG-API-KEY`` header and
``{"identifier", "password"}``; the ``CST`` and ``X-SECURITY-TOKEN`` response headers
authenticate every later call. An expired or invalid token answers 401
(``error.security.client-token-invalid`` / ``...oauth-token-invalid``): we log in again once
and repeat the call (a refused request has no effect, so repeating it is safe).

Markets: ``GET /markets/{epic}`` (Version 3) gives what a deal must respect: the contract size
(units per contract, as text; none for markets dealt per share), the currencies the market
deals in (one flagged default) and the minimum deal size. IG publishes no size increment, so
sizes step by the decimals of the minimum (0.5 -> 0.1, 0.04 -> 0.01, 1 -> 1). Details are
cached per epic; a size is rounded down to the step (never more than approved) and one below
the minimum is refused before it is sent. An unknown epic answers 404
``error.public-api.epic-not-found``.

Dealing: ``POST /positions/otc`` (Version 2) opens a position and answers only a
``dealReference``; the outcome is read from ``GET /confirms/{dealReference}`` (``dealStatus``
ACCEPTED or REJECTED with a ``reason``). We set the ``dealReference`` ourselves, derived from
our order id, so a request whose answer was lost (timeout, 5xx, broken connection) is never
blindly resent. IG keeps a confirmation about a minute; after that ``/confirms`` answers 404
``error.confirms.deal-not-found`` for a deal it did make. So before any resend the deal is
looked for where it lasts: the open positions (``GET /positions`` v2 carry their
``dealReference``) and the account's activity (``GET /history/activity`` v3, detailed: each
activity's ``details.dealReference``, which also finds a position already closed again and a
working order). Only a reference IG has no trace of is sent again. Closing is
``POST /positions/otc`` with the ``_method: DELETE`` header (Version 1); resting orders are
``/workingorders/otc``.

Allowances: IG caps requests per minute per API key (``allowanceApplicationOverall``) and per
account (``allowanceAccountOverall`` for non-trading, ``allowanceAccountTrading`` for trading
requests); going over answers 403 ``error.public-api.exceeded-...-allowance``. The allowances
are read from the account at login (``GET /operations/application`` v1, IG's published 60/30/100
until then) and drawn from a limiter shared with ingestion, which uses the same key (Redis
when configured, key names as in tai_ingestion.sources.ig): a request over them waits for the
window.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

import httpx
from pydantic import SecretStr

from tai_core.clock import Clock
from tai_events.orders import OrderType, Side
from tai_execution.paper import WorkingOrder
from tai_store.ratelimit import RateLimiter, acquire

DEMO_BASE_URL = "https://demo-api.ig.com/gateway/deal"
LIVE_BASE_URL = "https://api.ig.com/gateway/deal"
DEAL_NOT_FOUND = "error.confirms.deal-not-found"
EPIC_NOT_FOUND_CODES = frozenset(
    {"error.public-api.epic-not-found", "error.service.marketdata.instrument.epic.unavailable"}
)
ALLOWANCE_WINDOW_SECONDS = 60.0
MARKET_DETAILS_TTL = timedelta(hours=6)
ACTIVITY_LOOKBACK = timedelta(days=2)
"""How far back the activity is searched for a deal: longer than any approval lives."""
ACTIVITY_PAGES = 10
VERDICTS_KEPT = 10_000
_LOG = logging.getLogger(__name__)
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
    "error.public-api.epic-not-found": "IG knows no market with this epic",
    "error.service.marketdata.instrument.epic.unavailable": "the IG market (epic) is unavailable",
    "below_minimum_size": "the order is below IG's minimum deal size for the market",
    "no_contract_size": "IG gives no contract size for the market: set EXECUTION_IG_CONTRACT_SIZES",
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


@dataclass(frozen=True, slots=True)
class IgAllowances:
    """An API key's request allowances per minute (``GET /operations/application``)."""

    application_overall: int = 60
    account_overall: int = 30
    account_trading: int = 100

    @classmethod
    def from_applications(cls, payload: Any, api_key: str) -> IgAllowances | None:
        """Return the allowances of ``api_key``'s entry, or None when IG lists no such key."""
        entries = payload if isinstance(payload, list) else []
        entry = next(
            (item for item in entries if isinstance(item, dict) and item.get("apiKey") == api_key),
            None,
        )
        if entry is None:
            return None
        defaults = cls()

        def allowance(name: str, default: int) -> int:
            value = entry.get(name)
            return int(value) if isinstance(value, int | float) and value > 0 else default

        return cls(
            application_overall=allowance(
                "allowanceApplicationOverall", defaults.application_overall
            ),
            account_overall=allowance("allowanceAccountOverall", defaults.account_overall),
            account_trading=allowance("allowanceAccountTrading", defaults.account_trading),
        )


def allowance_key(api_key: str, account_id: str, kind: str) -> str:
    """Return the shared limiter's key name of one IG allowance (the same in ingestion)."""
    if kind == "application":
        return f"ig:key-{hashlib.sha256(api_key.encode()).hexdigest()[:16]}:application"
    return f"ig:account-{account_id}:{kind}"


class IgClient:
    """Logs in and sends authenticated requests to the IG REST API within its allowances."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: IgCredentials,
        *,
        limiter: RateLimiter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._credentials = credentials
        self._limiter = limiter
        self._sleep = sleep
        self._tokens: tuple[str, str] | None = None
        self.account_id = ""
        self.allowances = IgAllowances()
        self.logins = 0

    def _headers(self, version: str) -> dict[str, str]:
        return {
            "X-IG-API-KEY": self._credentials.api_key.get_secret_value(),
            "Accept": "application/json; charset=UTF-8",
            "Content-Type": "application/json; charset=UTF-8",
            "Version": version,
        }

    async def _take(self, *, trading: bool) -> None:
        """Wait for the key's and the account's allowance of this kind of request."""
        api_key = self._credentials.api_key.get_secret_value()
        await acquire(
            self._limiter,
            allowance_key(api_key, self.account_id, "application"),
            self.allowances.application_overall,
            ALLOWANCE_WINDOW_SECONDS,
            sleep=self._sleep,
        )
        if not self.account_id:
            return  # logging in: the account is not known yet
        kind, limit = (
            ("trading", self.allowances.account_trading)
            if trading
            else ("non-trading", self.allowances.account_overall)
        )
        await acquire(
            self._limiter,
            allowance_key(api_key, self.account_id, kind),
            limit,
            ALLOWANCE_WINDOW_SECONDS,
            sleep=self._sleep,
        )

    async def login(self) -> None:
        """Open a session (``POST /session`` v2), keep its tokens, then read the allowances."""
        await self._take(trading=False)
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
        await self._read_allowances()

    async def _read_allowances(self) -> None:
        try:
            payload = await self.request("GET", "/operations/application", version="1")
        except IgError as error:
            _LOG.warning("IG allowances not read (%s); IG's published ones apply", error)
            return
        allowances = IgAllowances.from_applications(
            payload, self._credentials.api_key.get_secret_value()
        )
        if allowances is None:
            _LOG.warning("IG lists no application with this key; IG's published allowances apply")
            return
        self.allowances = allowances

    async def request(
        self,
        method: str,
        path: str,
        *,
        version: str,
        trading: bool = False,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send an authenticated call and return its JSON body; map IG failures to errors."""
        for attempt in range(2):
            if self._tokens is None:
                await self.login()
            if self._tokens is None:
                raise IgAuthenticationError("login", "IG answered the login without session tokens")
            cst, token = self._tokens
            await self._take(trading=trading)
            headers = {**self._headers(version), "CST": cst, "X-SECURITY-TOKEN": token}
            headers.update(extra_headers or {})
            response = await self._send(method, path, headers=headers, json=json, params=params)
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
        params: Mapping[str, str | int] | None = None,
    ) -> httpx.Response:
        try:
            return await self._http.request(method, path, headers=headers, json=json, params=params)
        except httpx.TimeoutException as error:
            raise IgTimeoutError("timeout", f"{method} {path} timed out") from error
        except httpx.TransportError as error:
            raise IgUnavailableError("transport", f"{method} {path}: {error}") from error


@dataclass(frozen=True, slots=True)
class MarketRules:
    """What a deal in one IG market must respect (``GET /markets/{epic}``)."""

    epic: str
    contract_size: float
    """Units of the instrument per contract (IG's deal size counts contracts)."""
    size_step: Decimal
    min_size: Decimal
    currencies: tuple[str, ...]
    default_currency: str

    def size(self, quantity: float) -> float:
        """Return the deal size of ``quantity`` units: rounded down to the size step."""
        contracts = Decimal(repr(quantity)) / Decimal(repr(self.contract_size))
        return float(contracts.quantize(self.size_step, rounding=ROUND_DOWN))

    def quantity(self, size: float) -> float:
        """Return the units of a deal size."""
        return size * self.contract_size

    def currency(self, preferred: str | None) -> str:
        """Return ``preferred`` where the market deals in it, else the market's default."""
        return preferred if preferred in self.currencies else self.default_currency

    @classmethod
    def from_payload(
        cls, epic: str, payload: Any, contract_size: float | None = None
    ) -> MarketRules:
        """Read market details (v3); ``contract_size`` overrides IG's (none for share CFDs)."""
        instrument = payload.get("instrument", {}) if isinstance(payload, dict) else {}
        rules = payload.get("dealingRules", {}) if isinstance(payload, dict) else {}
        size = contract_size or _positive_number(instrument.get("contractSize"))
        if size is None and instrument.get("unit") == "SHARES":
            size = 1.0  # share CFDs are dealt per share
        if size is None:
            raise IgRequestRejectedError(
                "no_contract_size", f"IG gives no contract size for {epic}: set it per symbol"
            )
        minimum = _positive_number((rules.get("minDealSize") or {}).get("value")) or 1.0
        min_size = Decimal(repr(minimum))
        exponent = min_size.normalize().as_tuple().exponent
        step = Decimal(1).scaleb(min(int(exponent), 0)) if isinstance(exponent, int) else Decimal(1)
        currencies = [item for item in instrument.get("currencies") or [] if isinstance(item, dict)]
        codes = tuple(str(item.get("code")) for item in currencies if item.get("code"))
        default = next((str(item["code"]) for item in currencies if item.get("isDefault")), None)
        if not codes:
            raise IgRequestRejectedError("no_currency", f"IG lists no dealing currency for {epic}")
        return cls(
            epic=epic,
            contract_size=size,
            size_step=step,
            min_size=min_size,
            currencies=codes,
            default_currency=default or codes[0],
        )


def default_epic(symbol: str) -> str | None:
    """Return the mini CFD epic of a six-letter FX pair (ingestion's default too), else None."""
    if len(symbol) == 6 and symbol.isalpha() and symbol.isupper():
        return f"CS.D.{symbol}.MINI.IP"
    return None


class IgBroker:
    """Opens and closes OTC positions and resting orders on IG; reads positions and balance."""

    name = "ig"

    def __init__(
        self,
        client: IgClient,
        epics: Mapping[str, str],
        *,
        clock: Clock,
        currency_code: str | None = None,
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
        self._clock = clock
        self._sleep = sleep
        self._markets: dict[str, tuple[datetime, MarketRules]] = {}
        self._verdicts: dict[str, DealConfirmation] = {}
        """IG's verdicts found so far by reference (a verdict never changes once given)."""

    def epic(self, symbol: str) -> str:
        """Return the IG epic of a symbol (configured, or the FX pair's mini CFD)."""
        epic = self.epics.get(symbol) or default_epic(symbol)
        if epic is None:
            raise IgRequestRejectedError("unknown_epic", f"no IG epic configured for {symbol}")
        self.symbols.setdefault(epic, symbol)
        return epic

    async def market(self, epic: str) -> MarketRules:
        """Return the dealing rules of ``epic`` (``GET /markets/{epic}`` v3, cached)."""
        now = self._clock.now()
        cached = self._markets.get(epic)
        if cached is not None and now - cached[0] < MARKET_DETAILS_TTL:
            return cached[1]
        payload = await self.client.request("GET", f"/markets/{epic}", version="3")
        symbol = self.symbols.get(epic)
        rules = MarketRules.from_payload(
            epic, payload, self.contract_sizes.get(symbol) if symbol else None
        )
        self._markets[epic] = (now, rules)
        return rules

    def _cached_rules(self, symbol: str) -> MarketRules | None:
        epic = self.epics.get(symbol) or default_epic(symbol) or symbol
        cached = self._markets.get(epic)
        return cached[1] if cached is not None else None

    async def size(self, symbol: str, quantity: float) -> float:
        """Return the IG deal size of ``quantity`` units; refuse one below IG's minimum."""
        rules = await self.market(self.epic(symbol))
        size = rules.size(quantity)
        if Decimal(repr(size)) < rules.min_size:
            raise IgRequestRejectedError(
                "below_minimum_size",
                f"{quantity:g} {symbol} is {quantity / rules.contract_size:g} contracts of "
                f"{rules.contract_size:g}; IG's minimum deal size is {rules.min_size}",
            )
        return size

    def quantity(self, symbol: str, size: float) -> float:
        """Return units for an IG deal size.

        Every deal and confirmation reads its market's details first, so they are cached
        here; without them only a configured contract size can convert.
        """
        rules = self._cached_rules(symbol)
        if rules is not None:
            return rules.quantity(size)
        if symbol in self.contract_sizes:
            return size * self.contract_sizes[symbol]
        raise IgRequestRejectedError(
            "no_contract_size", f"the contract size of {symbol} is not known yet"
        )

    async def _currency(self, symbol: str) -> str:
        rules = await self.market(self.epic(symbol))
        return rules.currency(self.currency_code)

    async def open_request(self, order: WorkingOrder) -> dict[str, Any]:
        """Return the ``POST /positions/otc`` (v2) body of a market entry with its bracket."""
        body: dict[str, Any] = {
            "epic": self.epic(order.symbol),
            "expiry": "-",
            "direction": order.side.value,
            "size": await self.size(order.symbol, order.quantity),
            "orderType": "MARKET",
            "timeInForce": "FILL_OR_KILL",
            "guaranteedStop": False,
            # Without a bracket, forceOpen false nets an opposite order against the open
            # position (as our ledger does); IG requires forceOpen true when levels are attached.
            "forceOpen": order.stop_loss is not None or order.take_profit is not None,
            "currencyCode": await self._currency(order.symbol),
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
        return await self._deal(
            "/positions/otc", "2", await self.open_request(order), order.order_id
        )

    async def create_working_order(self, order: WorkingOrder) -> DealConfirmation:
        """Place a LIMIT or STOP resting order (``POST /workingorders/otc`` v2)."""
        level = order.limit_price if order.order_type is OrderType.LIMIT else order.stop_price
        body: dict[str, Any] = {
            "epic": self.epic(order.symbol),
            "expiry": "-",
            "direction": order.side.value,
            "size": await self.size(order.symbol, order.quantity),
            "level": level,
            "type": order.order_type.value,
            "timeInForce": "GOOD_TILL_CANCELLED",
            "guaranteedStop": False,
            "currencyCode": await self._currency(order.symbol),
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
            "size": await self.size(symbol, quantity),
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
                # The deal may or may not exist: look for it everywhere IG keeps a trace
                # (allowing the time IG takes to publish a confirmation) before any resend.
                last_error = error
                confirmation = await self._settled_confirmation(reference)
                if confirmation is not None:
                    return confirmation
                continue
            return await self.await_confirmation(reference)
        raise last_error or IgUnavailableError("deal", f"no attempt was made for {order_id}")

    async def _settled_confirmation(self, reference: str) -> DealConfirmation | None:
        for attempt in range(self.confirm_attempts):
            confirmation = await self._confirm(reference)
            if confirmation is not None:
                self._remember(confirmation)
                return confirmation
            if attempt + 1 < self.confirm_attempts:
                await self._sleep(self.confirm_delay_seconds)
        return await self.confirmation(reference)

    async def _confirm(self, reference: str) -> DealConfirmation | None:
        """Return ``GET /confirms/{reference}``, or None when IG has none (any longer)."""
        try:
            payload = await self.client.request("GET", f"/confirms/{reference}", version="1")
        except IgRequestRejectedError as error:
            if error.code == DEAL_NOT_FOUND:
                return None
            raise
        confirmation = DealConfirmation.from_payload(payload)
        if confirmation.epic:
            await self.market(confirmation.epic)  # so its size converts to units
        return confirmation

    async def confirmation(self, reference: str) -> DealConfirmation | None:
        """Return IG's verdict on a deal, or None when IG has no trace of it at all.

        The confirmation itself lasts about a minute; after that the deal is found among
        the open positions or in the account's activity (a position closed again since, a
        working order), so an order IG did deal is never taken for one it never saw.
        """
        known = self._verdicts.get(reference)
        if known is not None:
            return known  # e.g. a working order still resting: nothing to ask IG again
        confirmation = await self._find(reference)
        if confirmation is not None:
            self._remember(confirmation)
        return confirmation

    def _remember(self, confirmation: DealConfirmation) -> None:
        if len(self._verdicts) >= VERDICTS_KEPT:
            self._verdicts.pop(next(iter(self._verdicts)))
        self._verdicts[confirmation.deal_reference] = confirmation

    async def _find(self, reference: str) -> DealConfirmation | None:
        confirmation = await self._confirm(reference)
        if confirmation is not None:
            return confirmation
        for position in await self.open_positions():
            if position.deal_reference == reference:
                await self.market(position.epic)  # so its size converts to units
                return DealConfirmation(
                    deal_reference=reference,
                    deal_status="ACCEPTED",
                    reason="SUCCESS",
                    deal_id=position.deal_id,
                    level=position.level,
                    size=position.size,
                    direction=position.direction,
                    epic=position.epic,
                )
        return await self.deal_from_activity(reference)

    async def deal_from_activity(self, reference: str) -> DealConfirmation | None:
        """Find the deal in the account's activity (``GET /history/activity`` v3, detailed)."""
        params: dict[str, str | int] = {
            "from": (self._clock.now() - ACTIVITY_LOOKBACK).strftime("%Y-%m-%dT%H:%M:%S"),
            "detailed": "true",
            "pageSize": 500,
        }
        for _page in range(ACTIVITY_PAGES):
            payload = await self.client.request(
                "GET", "/history/activity", version="3", params=params
            )
            activities = payload.get("activities", []) if isinstance(payload, dict) else []
            for activity in activities:
                details = activity.get("details") or {}
                if details.get("dealReference") != reference:
                    continue
                if activity.get("type") not in {"POSITION", "WORKING_ORDER"}:
                    continue
                status = str(activity.get("status", ""))
                epic = _optional_str(activity.get("epic"))
                if epic:
                    await self.market(epic)
                return DealConfirmation(
                    deal_reference=reference,
                    deal_status="ACCEPTED" if status == "ACCEPTED" else "REJECTED",
                    reason="SUCCESS" if status == "ACCEPTED" else "UNKNOWN",
                    deal_id=_optional_str(activity.get("dealId")),
                    level=_optional_float(details.get("level")),
                    size=_optional_float(details.get("size")),
                    direction=_optional_str(details.get("direction")),
                    epic=epic,
                )
            following = (payload.get("metadata") or {}).get("paging", {}).get("next")
            if not following:
                return None
            query = httpx.URL(str(following)).params
            if "from" not in query:
                return None
            params = {**params, **{key: str(query[key]) for key in ("from", "to") if key in query}}
        return None

    async def await_confirmation(self, reference: str) -> DealConfirmation:
        """Read a just-sent deal's confirmation (IG may take a moment to publish it)."""
        confirmation = await self._settled_confirmation(reference)
        if confirmation is None:
            raise IgUnavailableError(DEAL_NOT_FOUND, f"no trace of {reference} at IG yet")
        return confirmation

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
            rules = await self.market(position.epic)
            sign = 1.0 if position.direction == Side.BUY.value else -1.0
            net[symbol] = net.get(symbol, 0.0) + sign * rules.quantity(position.size)
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


def _positive_number(value: object) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if number > 0 else None
