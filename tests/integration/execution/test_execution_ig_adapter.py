"""The IG adapter against a local stub that answers as IG documents, failures included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from tai_events.orders import OrderType, Side
from tai_execution.ig import (
    IgAuthenticationError,
    IgBroker,
    IgClient,
    IgCredentials,
    IgRateLimitedError,
    SlidingWindowLimiter,
    deal_reference,
)
from tai_execution.paper import WorkingOrder
from tests.integration.execution.ig_stub import (
    API_KEY,
    IDENTIFIER,
    PASSWORD,
    Fault,
    IgStub,
    start_stub,
    stop_stub,
)

pytestmark = pytest.mark.integration

EPIC = "CS.D.EURUSD.MINI.IP"


@dataclass
class Harness:
    stub: IgStub
    broker: IgBroker
    client: IgClient


async def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    stub, runner, url = await start_stub()
    http = httpx.AsyncClient(base_url=url, timeout=1.0)
    client = IgClient(
        http,
        IgCredentials(SecretStr(API_KEY), IDENTIFIER, SecretStr(PASSWORD)),
        trading_limiter=SlidingWindowLimiter(100),
        non_trading_limiter=SlidingWindowLimiter(100),
    )
    broker = IgBroker(client, {"EURUSD": EPIC}, currency_code="USD", sleep=_no_sleep)
    try:
        yield Harness(stub, broker, client)
    finally:
        await http.aclose()
        await stop_stub(stub, runner)


def _order(order_id: str = "ord-1", **changes: object) -> WorkingOrder:
    fields: dict[str, object] = {
        "order_id": order_id,
        "strategy": "sma_cross",
        "symbol": "EURUSD",
        "side": Side.BUY,
        "quantity": 2.0,
        "signal_time": datetime(2024, 1, 2, tzinfo=UTC),
        "price_floor": 1.0,
        "price_ceiling": 1.2,
    }
    fields.update(changes)
    return WorkingOrder(**fields)  # type: ignore[arg-type]


async def test_open_position_logs_in_deals_once_and_confirms(harness: Harness) -> None:
    # Act
    confirmation = await harness.broker.open_position(_order(stop_loss=1.09, take_profit=1.12))
    # Assert
    reference = deal_reference("ord-1")
    assert confirmation.accepted
    assert confirmation.level == 1.1
    assert confirmation.size == 2.0
    assert harness.stub.state.deal_posts == {reference: 1}
    assert harness.stub.state.logins == 1
    [position] = harness.stub.state.positions.values()
    assert (position["stopLevel"], position["limitLevel"]) == (1.09, 1.12)
    assert await harness.broker.positions() == {"EURUSD": 2.0}


async def test_deal_reference_is_stable_and_fits_igs_pattern() -> None:
    reference = deal_reference("ord-0123456789-abcdef-long-order-identifier")
    assert reference == deal_reference("ord-0123456789-abcdef-long-order-identifier")
    assert reference != deal_reference("ord-2")
    assert len(reference) <= 30
    assert reference.isalnum()


async def test_expired_session_logs_in_again_and_repeats_the_call(harness: Harness) -> None:
    await harness.broker.balance()
    harness.stub.state.expire_sessions()
    balance = await harness.broker.balance()
    assert balance.balance == 10_000.0
    assert balance.account_id == "ABC123"
    assert harness.stub.state.logins == 2


async def test_wrong_password_is_an_authentication_error(harness: Harness) -> None:
    client = IgClient(
        harness.client._http,
        IgCredentials(SecretStr(API_KEY), IDENTIFIER, SecretStr("wrong")),
        trading_limiter=SlidingWindowLimiter(10),
        non_trading_limiter=SlidingWindowLimiter(10),
    )
    with pytest.raises(IgAuthenticationError) as raised:
        await client.login()
    assert raised.value.code == "error.security.invalid-details"


async def test_exceeded_allowance_is_reported_as_rate_limiting(harness: Harness) -> None:
    harness.stub.state.faults.append(Fault("POST", "/positions/otc", "403"))
    with pytest.raises(IgRateLimitedError) as raised:
        await harness.broker.open_position(_order())
    assert "allowance" in raised.value.code
    assert harness.stub.state.deal_posts == {}


async def test_500_after_the_deal_is_done_is_not_resent(harness: Harness) -> None:
    # Arrange: IG makes the deal but the reply is a 500
    harness.stub.state.faults.append(Fault("POST", "/positions/otc", "500_after_deal"))
    # Act
    confirmation = await harness.broker.open_position(_order())
    # Assert: the adapter asked /confirms and found the deal instead of dealing again
    assert confirmation.accepted
    assert harness.stub.state.deal_posts == {deal_reference("ord-1"): 1}
    assert len(harness.stub.state.positions) == 1


async def test_500_before_the_deal_is_resent_once_with_the_same_reference(
    harness: Harness,
) -> None:
    harness.stub.state.faults.append(Fault("POST", "/positions/otc", "500"))
    confirmation = await harness.broker.open_position(_order())
    assert confirmation.accepted
    assert harness.stub.state.deal_posts == {deal_reference("ord-1"): 1}
    methods = [request for request in harness.stub.state.requests if request[1] == "/positions/otc"]
    assert len(methods) == 2  # the refused first attempt, then the one IG dealt


async def test_timeout_after_the_deal_reads_the_confirmation_instead_of_resending(
    harness: Harness,
) -> None:
    harness.stub.state.faults.append(Fault("POST", "/positions/otc", "hang"))
    confirmation = await harness.broker.open_position(_order())
    assert confirmation.accepted
    assert harness.stub.state.deal_posts == {deal_reference("ord-1"): 1}


async def test_rejected_confirmation_carries_igs_reason(harness: Harness) -> None:
    harness.stub.state.rejections.append("INSUFFICIENT_FUNDS")
    confirmation = await harness.broker.open_position(_order())
    assert not confirmation.accepted
    assert confirmation.reason == "INSUFFICIENT_FUNDS"
    assert harness.stub.state.positions == {}


async def test_unknown_deal_reference_has_no_confirmation(harness: Harness) -> None:
    assert await harness.broker.confirmation(deal_reference("never-sent")) is None


async def test_limit_order_rests_as_a_working_order(harness: Harness) -> None:
    confirmation = await harness.broker.open_position(
        _order("ord-limit", order_type=OrderType.LIMIT, limit_price=1.05)
    )
    assert confirmation.accepted
    [working] = await harness.broker.working_orders()
    assert (working["orderType"], working["orderLevel"], working["epic"]) == ("LIMIT", 1.05, EPIC)


async def test_close_position_flattens_it(harness: Harness) -> None:
    await harness.broker.open_position(_order())
    confirmation = await harness.broker.close_position("EURUSD", Side.SELL, 2.0, "ord-close")
    assert confirmation.accepted
    assert await harness.broker.positions() == {}
    assert ("POST", "/positions/otc", "DELETE") in harness.stub.state.requests


async def test_limiter_makes_the_call_over_the_cap_wait_for_the_window() -> None:
    # Arrange: a fake monotonic clock that the limiter's sleep advances
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = SlidingWindowLimiter(2, 60.0, monotonic=lambda: now[0], sleep=sleep)
    # Act
    await limiter.acquire()
    now[0] = 10.0
    await limiter.acquire()
    await limiter.acquire()
    # Assert: the third call waited until the first left the window
    assert slept == [60.0 - 10.0]
