"""A local stand-in for IG's REST trading API, following its documented requests and answers.

It serves the calls the execution adapter makes (session, the key's allowances, market
details, positions/otc open and close, confirms, positions, working orders, activity,
accounts) with IG's payload shapes and error codes (tests/ig_responses.py), and behaves as IG
does where it matters: deal sizes are contracts of the market's contract size and must reach
its minimum; a confirmation is kept only ``confirm_lifetime`` (about a minute at IG), after
which ``/confirms`` answers 404 ``error.confirms.deal-not-found`` for a deal that was made; a
deal sent again once its confirmation is gone is dealt again (the duplicate the adapter must
avoid); and requests over the published allowances per minute are answered 403
``error.public-api.exceeded-...-allowance``. It counts every dealReference it receives and
injects IG's failures on request: an expired session (401), a spent allowance (403), 500s,
answers that never come (the deal done but the reply lost), and REJECTED confirmations.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests import ig_responses

API_KEY = "stub-api-key"
IDENTIFIER = "stub-user"
PASSWORD = "stub-password"
ACCOUNT_ID = ig_responses.ACCOUNT_ID
DEAL_REFERENCE_PATTERN = re.compile(r"^[A-Za-z0-9_\-]{1,30}$")
EURUSD_MINI = "CS.D.EURUSD.MINI.IP"
TRADING_PATHS = ("/positions/otc", "/workingorders/otc")


@dataclass
class Fault:
    """A failure the next matching request meets."""

    method: str
    path_prefix: str
    kind: str
    """``401``, ``403``, ``500``, ``500_after_deal`` (deal done, reply lost), ``hang``."""


@dataclass
class Allowances:
    """IG's published allowances per minute (what ``/operations/application`` reports)."""

    application_overall: int = 60
    account_overall: int = 30
    account_trading: int = 100


@dataclass
class IgStubState:
    """What the stub holds and counts; tests arrange and inspect it."""

    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    prices: dict[str, float] = field(default_factory=lambda: {EURUSD_MINI: 1.1})
    markets: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {EURUSD_MINI: ig_responses.market_body(EURUSD_MINI)}
    )
    allowances: Allowances = field(default_factory=Allowances)
    confirm_lifetime: timedelta = timedelta(minutes=1)
    deal_posts: Counter[str] = field(default_factory=Counter)
    confirms: dict[str, tuple[datetime, dict[str, Any]]] = field(default_factory=dict)
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    working_orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    activities: list[dict[str, Any]] = field(default_factory=list)
    tokens: set[tuple[str, str]] = field(default_factory=set)
    faults: deque[Fault] = field(default_factory=deque)
    rejections: deque[str] = field(default_factory=deque)
    logins: int = 0
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    request_times: dict[str, list[datetime]] = field(default_factory=dict)
    allowance_refusals: int = 0
    balance: float = 10_000.0
    hold_deals: bool = False
    deal_received: asyncio.Event = field(default_factory=asyncio.Event)
    release_deals: asyncio.Event = field(default_factory=asyncio.Event)
    unhang: asyncio.Event = field(default_factory=asyncio.Event)

    def expire_sessions(self) -> None:
        """Invalidate every session token (IG's tokens expire)."""
        self.tokens.clear()

    def expire_confirms(self) -> None:
        """Let every confirmation's minute pass (IG keeps them about a minute)."""
        self.confirms = {
            reference: (created - self.confirm_lifetime - timedelta(seconds=1), payload)
            for reference, (created, payload) in self.confirms.items()
        }

    def net_positions(self) -> dict[str, float]:
        """Return the signed size per epic."""
        net: dict[str, float] = {}
        for position in self.positions.values():
            sign = 1.0 if position["direction"] == "BUY" else -1.0
            net[position["epic"]] = net.get(position["epic"], 0.0) + sign * position["size"]
        return net

    def close_all(self, epic: str) -> None:
        """Close every position in ``epic`` outside the adapter (a stop or a limit was hit)."""
        for deal_id, position in list(self.positions.items()):
            if position["epic"] == epic:
                del self.positions[deal_id]

    def _within(self, kind: str, limit: int) -> bool:
        now = self.clock()
        times = [t for t in self.request_times.get(kind, []) if t > now - timedelta(minutes=1)]
        if len(times) >= limit:
            self.request_times[kind] = times
            return False
        self.request_times[kind] = [*times, now]
        return True


def _error(status: int, code: str) -> web.Response:
    return web.json_response(ig_responses.error_body(code), status=status)


class IgStub:
    """The aiohttp application and its state."""

    def __init__(self, state: IgStubState | None = None) -> None:
        self.state = state or IgStubState()
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_post("/session", self.login)
        self.app.router.add_get("/operations/application", self.applications)
        self.app.router.add_get("/markets/{epic}", self.market)
        self.app.router.add_post("/positions/otc", self.positions_otc)
        self.app.router.add_get("/positions", self.list_positions)
        self.app.router.add_get("/confirms/{reference}", self.confirm)
        self.app.router.add_get("/workingorders", self.list_working_orders)
        self.app.router.add_post("/workingorders/otc", self.create_working_order)
        self.app.router.add_get("/history/activity", self.activity)
        self.app.router.add_get("/accounts", self.accounts)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        state = self.state
        state.requests.append((request.method, request.path, request.headers.get("_method", "")))
        if request.headers.get("X-IG-API-KEY") != API_KEY:
            return _error(403, "error.security.api-key-invalid")
        refusal = self._over_allowance(request)
        if refusal is not None:
            state.allowance_refusals += 1
            return _error(403, refusal)
        if request.path != "/session":
            tokens = (request.headers.get("CST", ""), request.headers.get("X-SECURITY-TOKEN", ""))
            if tokens not in state.tokens:
                return _error(*ig_responses.TOKEN_INVALID)
        for fault in list(state.faults):
            if request.method == fault.method and request.path.startswith(fault.path_prefix):
                state.faults.remove(fault)
                if fault.kind == "401":
                    state.expire_sessions()
                    return _error(*ig_responses.TOKEN_INVALID)
                if fault.kind == "403":
                    return _error(*ig_responses.TRADING_ALLOWANCE)
                if fault.kind == "500":
                    return _error(500, "system.error")
                if fault.kind == "500_after_deal":
                    await handler(request)
                    return _error(500, "system.error")
                if fault.kind == "hang":
                    await handler(request)
                    await state.unhang.wait()
                    return _error(500, "system.error")
        return await handler(request)

    def _over_allowance(self, request: web.Request) -> str | None:
        """Count the request against IG's allowances; return the 403 code when over one."""
        state, limits = self.state, self.state.allowances
        if not state._within("application", limits.application_overall):
            return ig_responses.API_KEY_ALLOWANCE[1]
        if request.path == "/session":
            return None
        trading = request.method == "POST" and request.path in TRADING_PATHS
        if trading and not state._within("trading", limits.account_trading):
            return ig_responses.TRADING_ALLOWANCE[1]
        if not trading and not state._within("non-trading", limits.account_overall):
            return ig_responses.ACCOUNT_ALLOWANCE[1]
        return None

    async def login(self, request: web.Request) -> web.Response:
        """``POST /session`` v2."""
        if request.headers.get("Version") != "2":
            return _error(400, "error.request.invalid.version")
        body = await request.json()
        if body.get("identifier") != IDENTIFIER or body.get("password") != PASSWORD:
            return _error(401, "error.security.invalid-details")
        cst, token = uuid.uuid4().hex, uuid.uuid4().hex
        self.state.tokens.add((cst, token))
        self.state.logins += 1
        return web.json_response(
            ig_responses.session_body(ACCOUNT_ID), headers={"CST": cst, "X-SECURITY-TOKEN": token}
        )

    async def applications(self, request: web.Request) -> web.Response:
        """``GET /operations/application`` v1: the client's API keys and their allowances."""
        limits = self.state.allowances
        return web.json_response(
            ig_responses.applications_body(
                API_KEY,
                application_overall=limits.application_overall,
                account_overall=limits.account_overall,
                account_trading=limits.account_trading,
            )
        )

    async def market(self, request: web.Request) -> web.Response:
        """``GET /markets/{epic}`` v3."""
        if request.headers.get("Version") != "3":
            return _error(400, "error.request.invalid.version")
        market = self.state.markets.get(request.match_info["epic"])
        if market is None:
            return _error(*ig_responses.EPIC_NOT_FOUND)
        return web.json_response(market)

    def _size_refusal(self, epic: str, body: dict[str, Any]) -> str | None:
        market = self.state.markets.get(epic)
        if market is None:
            return "INSTRUMENT_NOT_FOUND"
        size = float(body["size"])
        minimum = market["dealingRules"]["minDealSize"]["value"]
        if size < minimum:
            return "MINIMUM_ORDER_SIZE_ERROR"
        codes = [currency["code"] for currency in market["instrument"]["currencies"]]
        if body.get("currencyCode") is not None and body["currencyCode"] not in codes:
            return "INSTRUMENT_NOT_TRADEABLE_IN_THIS_CURRENCY"
        return None

    def _live_confirm(self, reference: str) -> dict[str, Any] | None:
        entry = self.state.confirms.get(reference)
        if entry is None or self.state.clock() - entry[0] > self.state.confirm_lifetime:
            return None
        return entry[1]

    def _record(self, reference: str, payload: dict[str, Any]) -> None:
        self.state.confirms[reference] = (self.state.clock(), payload)

    async def positions_otc(self, request: web.Request) -> web.Response:
        """``POST /positions/otc``: open (v2), or close with the ``_method: DELETE`` header."""
        body = await request.json()
        if request.headers.get("_method") == "DELETE":
            return self._close(body)
        if request.headers.get("Version") != "2":
            return _error(400, "error.request.invalid.version")
        for required in ("epic", "expiry", "direction", "size", "orderType", "currencyCode"):
            if required not in body:
                return _error(400, f"validation.null-not-allowed.request.{required}")
        reference = str(body.get("dealReference") or uuid.uuid4().hex[:20])
        if not DEAL_REFERENCE_PATTERN.match(reference):
            return _error(400, "validation.pattern.invalid.dealReference")
        state = self.state
        state.deal_posts[reference] += 1
        if self._live_confirm(reference) is None:
            # Once its confirmation is gone, IG deals a resent reference again.
            self._open(reference, body)
        if state.hold_deals:
            # The deal is done at "IG"; the reply waits until the test lets it go.
            state.deal_received.set()
            await state.release_deals.wait()
        return web.json_response({"dealReference": reference})

    def _open(self, reference: str, body: dict[str, Any]) -> None:
        state = self.state
        epic = body["epic"]
        reason = state.rejections.popleft() if state.rejections else self._size_refusal(epic, body)
        if reason is None and epic not in state.prices:
            reason = "MARKET_OFFLINE"
        if reason is not None:
            self._record(reference, _confirm(reference, "REJECTED", reason, body, None, None))
            self._activity(reference, None, epic, "POSITION", "REJECTED", body, None)
            return
        level = state.prices[epic]
        size = float(body["size"])
        if not body.get("forceOpen", False):
            # forceOpen false: the deal first nets off opposite positions in the same market.
            size = self._net_off(epic, body["direction"], size)
        if size <= 0:
            self._record(reference, _confirm(reference, "ACCEPTED", "SUCCESS", body, None, level))
            self._activity(reference, None, epic, "POSITION", "ACCEPTED", body, level)
            return
        deal_id = f"DIAAAA{uuid.uuid4().hex[:10].upper()}"
        state.positions[deal_id] = {
            "dealId": deal_id,
            "dealReference": reference,
            "epic": epic,
            "direction": body["direction"],
            "size": size,
            "level": level,
            "stopLevel": body.get("stopLevel"),
            "limitLevel": body.get("limitLevel"),
            "currency": body["currencyCode"],
        }
        self._record(reference, _confirm(reference, "ACCEPTED", "SUCCESS", body, deal_id, level))
        self._activity(
            reference, deal_id, epic, "POSITION", "ACCEPTED", {**body, "size": size}, level
        )

    def _activity(
        self,
        reference: str,
        deal_id: str | None,
        epic: str,
        kind: str,
        status: str,
        body: dict[str, Any],
        level: float | None,
    ) -> None:
        self.state.activities.append(
            ig_responses.activity(
                deal_reference=reference,
                deal_id=deal_id or f"DIAAAR{uuid.uuid4().hex[:10].upper()}",
                epic=epic,
                kind=kind,
                status=status,
                direction=body["direction"],
                size=float(body["size"]),
                level=level,
                at=self.state.clock().strftime("%Y-%m-%dT%H:%M:%S"),
                action="POSITION_OPENED" if kind == "POSITION" else "WORKING_ORDER_CREATED",
            )
        )

    def _net_off(self, epic: str, direction: str, size: float) -> float:
        """Reduce opposite positions in ``epic`` by up to ``size``; return what is left."""
        remaining = size
        for deal_id, position in list(self.state.positions.items()):
            if remaining <= 0:
                break
            if position["epic"] != epic or position["direction"] == direction:
                continue
            taken = min(remaining, position["size"])
            position["size"] = round(position["size"] - taken, 12)
            remaining = round(remaining - taken, 12)
            if position["size"] <= 0:
                del self.state.positions[deal_id]
        return remaining

    def _close(self, body: dict[str, Any]) -> web.Response:
        state = self.state
        reference = uuid.uuid4().hex[:20]
        remaining = self._net_off(str(body.get("epic")), body["direction"], float(body["size"]))
        status = "ACCEPTED" if remaining <= 0 else "REJECTED"
        reason = "SUCCESS" if remaining <= 0 else "POSITION_NOT_AVAILABLE_TO_CLOSE"
        self._record(
            reference,
            _confirm(reference, status, reason, body, None, state.prices.get(body.get("epic", ""))),
        )
        return web.json_response({"dealReference": reference})

    async def confirm(self, request: web.Request) -> web.Response:
        """``GET /confirms/{dealReference}`` v1 (a confirmation lasts ``confirm_lifetime``)."""
        payload = self._live_confirm(request.match_info["reference"])
        if payload is None:
            return _error(*ig_responses.DEAL_NOT_FOUND)
        return web.json_response(payload)

    async def list_positions(self, request: web.Request) -> web.Response:
        """``GET /positions`` v2."""
        items = []
        for position in self.state.positions.values():
            market = self.state.markets.get(position["epic"], {}).get("instrument", {})
            items.append(
                {
                    "position": {
                        "contractSize": float(market.get("contractSize") or 1.0),
                        "createdDateUTC": "2024-01-02T10:00:00",
                        "dealId": position["dealId"],
                        "dealReference": position["dealReference"],
                        "size": position["size"],
                        "direction": position["direction"],
                        "level": position["level"],
                        "limitLevel": position["limitLevel"],
                        "stopLevel": position["stopLevel"],
                        "currency": position["currency"],
                        "controlledRisk": False,
                    },
                    "market": {
                        "instrumentName": position["epic"],
                        "expiry": "-",
                        "epic": position["epic"],
                        "instrumentType": "CURRENCIES",
                        "lotSize": market.get("lotSize", 1.0),
                        "bid": self.state.prices.get(position["epic"]),
                        "offer": self.state.prices.get(position["epic"]),
                        "marketStatus": "TRADEABLE",
                    },
                }
            )
        return web.json_response({"positions": items})

    async def create_working_order(self, request: web.Request) -> web.Response:
        """``POST /workingorders/otc`` v2."""
        body = await request.json()
        reference = str(body["dealReference"])
        self.state.deal_posts[reference] += 1
        if self._live_confirm(reference) is not None:
            return web.json_response({"dealReference": reference})
        reason = self._size_refusal(body["epic"], body)
        if reason is not None:
            self._record(reference, _confirm(reference, "REJECTED", reason, body, None, None))
            return web.json_response({"dealReference": reference})
        deal_id = f"DIAAAB{uuid.uuid4().hex[:10].upper()}"
        self.state.working_orders[deal_id] = {**body, "dealId": deal_id}
        self._record(
            reference,
            {
                **_confirm(reference, "ACCEPTED", "SUCCESS", body, deal_id, body.get("level")),
                "status": "OPEN",
            },
        )
        self._activity(
            reference, deal_id, body["epic"], "WORKING_ORDER", "ACCEPTED", body, body.get("level")
        )
        return web.json_response({"dealReference": reference})

    async def list_working_orders(self, request: web.Request) -> web.Response:
        """``GET /workingorders`` v2 (no dealReference: IG does not list one here)."""
        return web.json_response(
            {
                "workingOrders": [
                    {
                        "workingOrderData": {
                            "dealId": order["dealId"],
                            "direction": order["direction"],
                            "epic": order["epic"],
                            "orderSize": order["size"],
                            "orderLevel": order["level"],
                            "orderType": order["type"],
                            "timeInForce": order["timeInForce"],
                            "currencyCode": order["currencyCode"],
                        },
                        "marketData": {"epic": order["epic"]},
                    }
                    for order in self.state.working_orders.values()
                ]
            }
        )

    async def activity(self, request: web.Request) -> web.Response:
        """``GET /history/activity`` v3 (``from``, ``detailed``): newest first."""
        if request.headers.get("Version") != "3":
            return _error(400, "error.request.invalid.version")
        since = request.query.get("from", "")
        detailed = request.query.get("detailed") == "true"
        chosen = [
            activity if detailed else {k: v for k, v in activity.items() if k != "details"}
            for activity in reversed(self.state.activities)
            if activity["date"] >= since
        ]
        return web.json_response(ig_responses.activities_body(chosen))

    async def accounts(self, request: web.Request) -> web.Response:
        """``GET /accounts`` v1."""
        return web.json_response(
            {
                "accounts": [
                    {
                        "accountId": ACCOUNT_ID,
                        "accountName": "Demo-CFD",
                        "accountAlias": None,
                        "status": "ENABLED",
                        "accountType": "CFD",
                        "preferred": True,
                        "balance": {
                            "balance": self.state.balance,
                            "deposit": 0.0,
                            "profitLoss": 12.5,
                            "available": self.state.balance - 100.0,
                        },
                        "currency": "USD",
                        "canTransferFrom": True,
                        "canTransferTo": True,
                    }
                ]
            }
        )


def _confirm(
    reference: str,
    deal_status: str,
    reason: str,
    body: dict[str, Any],
    deal_id: str | None,
    level: float | None,
) -> dict[str, Any]:
    return {
        "date": "2024-01-02T10:00:00.000",
        "status": "OPEN" if deal_status == "ACCEPTED" else None,
        "reason": reason,
        "dealStatus": deal_status,
        "epic": body.get("epic"),
        "expiry": "-",
        "dealReference": reference,
        "dealId": deal_id,
        "affectedDeals": [] if deal_id is None else [{"dealId": deal_id, "status": "OPENED"}],
        "level": level,
        "size": body.get("size"),
        "direction": body.get("direction"),
        "stopLevel": body.get("stopLevel"),
        "limitLevel": body.get("limitLevel"),
        "stopDistance": None,
        "limitDistance": None,
        "guaranteedStop": False,
        "trailingStop": False,
        "profit": None,
        "profitCurrency": None,
    }


async def start_stub(state: IgStubState | None = None) -> tuple[IgStub, web.AppRunner, str]:
    """Serve a stub on 127.0.0.1 on a free port; return it, its runner and its base URL."""
    stub = IgStub(state)
    runner = web.AppRunner(stub.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    return stub, runner, f"http://127.0.0.1:{port}"


async def stop_stub(stub: IgStub, runner: web.AppRunner) -> None:
    """Let every held request finish, then stop serving."""
    stub.state.release_deals.set()
    stub.state.unhang.set()
    await runner.cleanup()
