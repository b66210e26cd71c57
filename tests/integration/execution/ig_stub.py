"""A local stand-in for IG's REST trading API, following its documented requests and answers.

It serves the calls the execution adapter makes (session, positions/otc open and close,
confirms, positions, working orders, accounts) with IG's payload shapes and error codes, counts
every dealReference it receives, and injects IG's failures on request: an expired session (401
``error.security.client-token-invalid``), a spent allowance (403
``error.public-api.exceeded-account-trading-allowance``), 500s, answers that never come (the
deal done but the reply lost), and REJECTED confirmations with a reason.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_KEY = "stub-api-key"
IDENTIFIER = "stub-user"
PASSWORD = "stub-password"
ACCOUNT_ID = "ABC123"
DEAL_REFERENCE_PATTERN = re.compile(r"^[A-Za-z0-9_\-]{1,30}$")


@dataclass
class Fault:
    """A failure the next matching request meets."""

    method: str
    path_prefix: str
    kind: str
    """``401``, ``403``, ``500``, ``500_after_deal`` (deal done, reply lost), ``hang``."""


@dataclass
class IgStubState:
    """What the stub holds and counts; tests arrange and inspect it."""

    prices: dict[str, float] = field(default_factory=lambda: {"CS.D.EURUSD.MINI.IP": 1.1})
    deal_posts: Counter[str] = field(default_factory=Counter)
    confirms: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    working_orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[tuple[str, str]] = field(default_factory=set)
    faults: deque[Fault] = field(default_factory=deque)
    rejections: deque[str] = field(default_factory=deque)
    logins: int = 0
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    balance: float = 10_000.0
    hold_deals: bool = False
    deal_received: asyncio.Event = field(default_factory=asyncio.Event)
    release_deals: asyncio.Event = field(default_factory=asyncio.Event)
    unhang: asyncio.Event = field(default_factory=asyncio.Event)

    def expire_sessions(self) -> None:
        """Invalidate every session token (IG's tokens expire)."""
        self.tokens.clear()

    def net_positions(self) -> dict[str, float]:
        """Return the signed size per epic."""
        net: dict[str, float] = {}
        for position in self.positions.values():
            sign = 1.0 if position["direction"] == "BUY" else -1.0
            net[position["epic"]] = net.get(position["epic"], 0.0) + sign * position["size"]
        return net


def _error(status: int, code: str) -> web.Response:
    return web.json_response({"errorCode": code}, status=status)


class IgStub:
    """The aiohttp application and its state."""

    def __init__(self, state: IgStubState | None = None) -> None:
        self.state = state or IgStubState()
        self.app = web.Application(middlewares=[self._middleware])
        self.app.router.add_post("/session", self.login)
        self.app.router.add_post("/positions/otc", self.positions_otc)
        self.app.router.add_get("/positions", self.list_positions)
        self.app.router.add_get("/confirms/{reference}", self.confirm)
        self.app.router.add_get("/workingorders", self.list_working_orders)
        self.app.router.add_post("/workingorders/otc", self.create_working_order)
        self.app.router.add_get("/accounts", self.accounts)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        state = self.state
        state.requests.append((request.method, request.path, request.headers.get("_method", "")))
        if request.headers.get("X-IG-API-KEY") != API_KEY:
            return _error(403, "error.security.api-key-invalid")
        if request.path != "/session":
            tokens = (request.headers.get("CST", ""), request.headers.get("X-SECURITY-TOKEN", ""))
            if tokens not in state.tokens:
                return _error(401, "error.security.client-token-invalid")
        for fault in list(state.faults):
            if request.method == fault.method and request.path.startswith(fault.path_prefix):
                state.faults.remove(fault)
                if fault.kind == "401":
                    state.expire_sessions()
                    return _error(401, "error.security.client-token-invalid")
                if fault.kind == "403":
                    return _error(403, "error.public-api.exceeded-account-trading-allowance")
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
            {
                "accountType": "CFD",
                "currencyIsoCode": "USD",
                "currentAccountId": ACCOUNT_ID,
                "lightstreamerEndpoint": "https://demo-apd.marketdatasystems.com",
                "clientId": "100000001",
                "timezoneOffset": 0,
                "hasActiveDemoAccounts": True,
                "hasActiveLiveAccounts": False,
                "trailingStopsEnabled": False,
                "accounts": [
                    {
                        "accountId": ACCOUNT_ID,
                        "accountName": "Demo-CFD",
                        "preferred": True,
                        "accountType": "CFD",
                    }
                ],
            },
            headers={"CST": cst, "X-SECURITY-TOKEN": token},
        )

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
        if reference not in state.confirms:
            self._open(reference, body)
        if state.hold_deals:
            # The deal is done at "IG"; the reply waits until the test lets it go.
            state.deal_received.set()
            await state.release_deals.wait()
        return web.json_response({"dealReference": reference})

    def _open(self, reference: str, body: dict[str, Any]) -> None:
        state = self.state
        epic = body["epic"]
        if state.rejections:
            reason = state.rejections.popleft()
            state.confirms[reference] = _confirm(reference, "REJECTED", reason, body, None, None)
            return
        if epic not in state.prices:
            state.confirms[reference] = _confirm(
                reference, "REJECTED", "INSTRUMENT_NOT_FOUND", body, None, None
            )
            return
        level = state.prices[epic]
        size = float(body["size"])
        if not body.get("forceOpen", False):
            # forceOpen false: the deal first nets off opposite positions in the same market.
            size = self._net_off(epic, body["direction"], size)
        if size <= 0:
            state.confirms[reference] = _confirm(
                reference, "ACCEPTED", "SUCCESS", body, None, level
            )
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
        state.confirms[reference] = _confirm(reference, "ACCEPTED", "SUCCESS", body, deal_id, level)

    def _net_off(self, epic: str, direction: str, size: float) -> float:
        """Reduce opposite positions in ``epic`` by up to ``size``; return what is left."""
        remaining = size
        for deal_id, position in list(self.state.positions.items()):
            if remaining <= 0:
                break
            if position["epic"] != epic or position["direction"] == direction:
                continue
            taken = min(remaining, position["size"])
            position["size"] -= taken
            remaining -= taken
            if position["size"] <= 0:
                del self.state.positions[deal_id]
        return remaining

    def _close(self, body: dict[str, Any]) -> web.Response:
        state = self.state
        reference = uuid.uuid4().hex[:20]
        remaining = self._net_off(str(body.get("epic")), body["direction"], float(body["size"]))
        status = "ACCEPTED" if remaining <= 0 else "REJECTED"
        reason = "SUCCESS" if remaining <= 0 else "POSITION_NOT_AVAILABLE_TO_CLOSE"
        state.confirms[reference] = _confirm(
            reference, status, reason, body, None, state.prices.get(body.get("epic", ""))
        )
        return web.json_response({"dealReference": reference})

    async def confirm(self, request: web.Request) -> web.Response:
        """``GET /confirms/{dealReference}`` v1."""
        payload = self.state.confirms.get(request.match_info["reference"])
        if payload is None:
            return _error(404, "error.confirms.deal-not-found")
        return web.json_response(payload)

    async def list_positions(self, request: web.Request) -> web.Response:
        """``GET /positions`` v2."""
        items = []
        for position in self.state.positions.values():
            items.append(
                {
                    "position": {
                        "contractSize": 1.0,
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
        deal_id = f"DIAAAB{uuid.uuid4().hex[:10].upper()}"
        self.state.working_orders[deal_id] = {**body, "dealId": deal_id}
        self.state.confirms[reference] = {
            **_confirm(reference, "ACCEPTED", "SUCCESS", body, deal_id, body.get("level")),
            "status": "OPEN",
        }
        return web.json_response({"dealReference": reference})

    async def list_working_orders(self, request: web.Request) -> web.Response:
        """``GET /workingorders`` v2."""
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
                        },
                        "marketData": {"epic": order["epic"]},
                    }
                    for order in self.state.working_orders.values()
                ]
            }
        )

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
