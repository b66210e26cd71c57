"""IG REST answers in the shapes IG documents (labs.ig.com REST reference), for the stubs.

Field names, nesting and types follow IG's reference and recorded answers (numbers where IG
sends numbers, ``contractSize`` as text, ``null`` where IG leaves a field empty); values are
made up. Errors are ``{"errorCode": ...}`` with IG's status codes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

ACCOUNT_ID = "ABC123"
LIGHTSTREAMER_ENDPOINT = "https://demo-apd.marketdatasystems.com"

DEAL_NOT_FOUND = (404, "error.confirms.deal-not-found")
EPIC_NOT_FOUND = (404, "error.public-api.epic-not-found")
TOKEN_INVALID = (401, "error.security.client-token-invalid")
ACCOUNT_ALLOWANCE = (403, "error.public-api.exceeded-account-allowance")
TRADING_ALLOWANCE = (403, "error.public-api.exceeded-account-trading-allowance")
API_KEY_ALLOWANCE = (403, "error.public-api.exceeded-api-key-allowance")
HISTORICAL_ALLOWANCE = (403, "error.public-api.exceeded-account-historical-data-allowance")


def error_body(code: str) -> dict[str, str]:
    """Return IG's error answer body."""
    return {"errorCode": code}


def session_body(account_id: str = ACCOUNT_ID) -> dict[str, Any]:
    """Return the ``POST /session`` (v2) body (the tokens travel in the CST/XST headers)."""
    return {
        "accountType": "CFD",
        "accountInfo": {
            "balance": 10000.0,
            "deposit": 0.0,
            "profitLoss": 0.0,
            "available": 10000.0,
        },
        "currencyIsoCode": "USD",
        "currencySymbol": "$",
        "currentAccountId": account_id,
        "lightstreamerEndpoint": LIGHTSTREAMER_ENDPOINT,
        "accounts": [
            {
                "accountId": account_id,
                "accountName": "Demo-CFD",
                "preferred": True,
                "accountType": "CFD",
            }
        ],
        "clientId": "100000001",
        "timezoneOffset": 0,
        "hasActiveDemoAccounts": True,
        "hasActiveLiveAccounts": False,
        "trailingStopsEnabled": False,
        "reroutingEnvironment": None,
        "dealingEnabled": True,
    }


def applications_body(
    api_key: str,
    *,
    application_overall: int = 60,
    account_overall: int = 30,
    account_trading: int = 100,
    historical_points: int = 10_000,
) -> list[dict[str, Any]]:
    """Return ``GET /operations/application`` (v1): one entry per API key of the client."""
    return [
        {
            "name": "TAI",
            "apiKey": api_key,
            "status": "ENABLED",
            "allowanceApplicationOverall": application_overall,
            "allowanceAccountTrading": account_trading,
            "allowanceAccountOverall": account_overall,
            "allowanceAccountHistoricalData": historical_points,
            "concurrentSubscriptionsLimit": 40,
            "allowEquities": False,
            "allowQuoteOrders": False,
            "createdDate": "2024-01-02",
        },
        {
            "name": "another application",
            "apiKey": "0" * 40,
            "status": "DISABLED",
            "allowanceApplicationOverall": 1,
            "allowanceAccountTrading": 1,
            "allowanceAccountOverall": 1,
            "allowanceAccountHistoricalData": 1,
            "concurrentSubscriptionsLimit": 1,
            "allowEquities": False,
            "allowQuoteOrders": False,
            "createdDate": "2020-01-01",
        },
    ]


def price_point(
    at_utc: datetime, mid: float, *, local: datetime | None = None, spread: float = 0.0002
) -> dict[str, Any]:
    """Return one ``GET /prices`` (v3) price: bid/ask/lastTraded per OHLC, both timestamps."""

    def quote(level: float) -> dict[str, Any]:
        return {
            "bid": round(level - spread / 2, 6),
            "ask": round(level + spread / 2, 6),
            "lastTraded": None,
        }

    return {
        "snapshotTime": (local or at_utc).strftime("%Y/%m/%d %H:%M:%S"),
        "snapshotTimeUTC": at_utc.strftime("%Y-%m-%dT%H:%M:%S"),
        "openPrice": quote(mid),
        "closePrice": quote(mid + 0.0005),
        "highPrice": quote(mid + 0.001),
        "lowPrice": quote(mid - 0.001),
        "lastTradedVolume": 42,
    }


def prices_body(
    prices: list[dict[str, Any]],
    *,
    page: int = 1,
    total_pages: int = 1,
    remaining: int = 9_000,
    total: int = 10_000,
    expiry_seconds: int = 400_000,
) -> dict[str, Any]:
    """Return a ``GET /prices/{epic}`` (v3) page with the allowance and paging metadata."""
    return {
        "prices": prices,
        "instrumentType": "CURRENCIES",
        "metadata": {
            "allowance": {
                "remainingAllowance": remaining,
                "totalAllowance": total,
                "allowanceExpiry": expiry_seconds,
            },
            "size": len(prices),
            "pageData": {"pageSize": 500, "pageNumber": page, "totalPages": total_pages},
        },
    }


def market_body(
    epic: str,
    *,
    contract_size: str | None = "10000",
    unit: str = "CONTRACTS",
    currencies: tuple[tuple[str, bool], ...] = (("USD", True), ("EUR", False)),
    min_deal_size: float = 0.5,
    lot_size: float = 1.0,
    bid: float = 1.0999,
    offer: float = 1.1001,
) -> dict[str, Any]:
    """Return ``GET /markets/{epic}`` (v3): instrument, dealing rules and snapshot."""
    return {
        "instrument": {
            "epic": epic,
            "expiry": "-",
            "name": epic,
            "forceOpenAllowed": True,
            "stopsLimitsAllowed": True,
            "lotSize": lot_size,
            "unit": unit,
            "type": "CURRENCIES",
            "controlledRiskAllowed": True,
            "streamingPricesAvailable": True,
            "marketId": epic.split(".")[2] if epic.count(".") >= 2 else epic,
            "currencies": [
                {
                    "code": code,
                    "symbol": code,
                    "baseExchangeRate": 1.0,
                    "exchangeRate": 1.0,
                    "isDefault": default,
                }
                for code, default in currencies
            ],
            "sprintMarketsMinimumExpiryTime": None,
            "sprintMarketsMaximumExpiryTime": None,
            "marginDepositBands": [{"min": 0, "max": None, "margin": 3.33, "currency": "USD"}],
            "marginFactor": 3.33,
            "marginFactorUnit": "PERCENTAGE",
            "slippageFactor": {"unit": "pct", "value": 50.0},
            "limitedRiskPremium": {"value": 0.6, "unit": "POINTS"},
            "openingHours": None,
            "expiryDetails": None,
            "rolloverDetails": None,
            "newsCode": "EUR=",
            "chartCode": "EURUSD",
            "country": None,
            "valueOfOnePip": "1.00",
            "onePipMeans": "0.0001 USD/EUR",
            "contractSize": contract_size,
            "specialInfo": ["DEFAULT KNOCK OUT LEVEL DISTANCE"],
        },
        "dealingRules": {
            "minStepDistance": {"unit": "POINTS", "value": 1.0},
            "minDealSize": {"unit": "POINTS", "value": min_deal_size},
            "minControlledRiskStopDistance": {"unit": "POINTS", "value": 10.0},
            "minNormalStopOrLimitDistance": {"unit": "POINTS", "value": 2.0},
            "maxStopOrLimitDistance": {"unit": "PERCENTAGE", "value": 75.0},
            "controlledRiskSpacing": {"unit": "POINTS", "value": 10.0},
            "marketOrderPreference": "AVAILABLE_DEFAULT_ON",
            "trailingStopsPreference": "AVAILABLE",
        },
        "snapshot": {
            "marketStatus": "TRADEABLE",
            "netChange": 0.0012,
            "percentageChange": 0.11,
            "updateTime": "10:00:00",
            "delayTime": 0,
            "bid": bid,
            "offer": offer,
            "high": offer + 0.002,
            "low": bid - 0.002,
            "binaryOdds": None,
            "decimalPlacesFactor": 5,
            "scalingFactor": 10000,
            "controlledRiskExtraSpread": 1,
        },
    }


def activity(
    *,
    deal_reference: str,
    deal_id: str,
    epic: str,
    kind: str,
    status: str,
    direction: str,
    size: float,
    level: float | None,
    at: str = "2024-01-02T10:00:00",
    action: str = "POSITION_OPENED",
) -> dict[str, Any]:
    """Return one ``GET /history/activity`` (v3, ``detailed=true``) activity."""
    return {
        "date": at,
        "epic": epic,
        "period": "-",
        "dealId": deal_id,
        "channel": "PUBLIC_WEB_API",
        "type": kind,
        "status": status,
        "description": "Position opened" if kind == "POSITION" else "Order placed",
        "details": {
            "dealReference": deal_reference,
            "actions": [{"actionType": action, "affectedDealId": deal_id}],
            "marketName": epic,
            "goodTillDate": None,
            "currency": "USD",
            "size": size,
            "direction": direction,
            "level": level,
            "stopLevel": None,
            "stopDistance": None,
            "guaranteedStop": False,
            "trailingStopDistance": None,
            "trailingStep": None,
            "limitLevel": None,
            "limitDistance": None,
        },
    }


def activities_body(activities: list[dict[str, Any]]) -> dict[str, Any]:
    """Return ``GET /history/activity`` (v3): the activities and the paging metadata."""
    return {
        "activities": activities,
        "metadata": {"paging": {"size": len(activities), "next": None}},
    }
