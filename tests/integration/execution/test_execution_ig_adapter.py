"""The IG adapter against a local stub that answers as IG documents, failures included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from tai_core.clock import FakeClock
from tai_events.orders import OrderType, Side
from tai_execution.ig import (
    IgAuthenticationError,
    IgBroker,
    IgClient,
    IgCredentials,
    IgRateLimitedError,
    IgRequestRejectedError,
    allowance_key,
    deal_reference,
)
from tai_execution.paper import WorkingOrder
from tai_ingestion.sources.ig import allowance_key as ingestion_allowance_key
from tai_store.ratelimit import InProcessRateLimiter
from tests import ig_responses
from tests.integration.execution.ig_stub import (
    API_KEY,
    EURUSD_MINI,
    IDENTIFIER,
    PASSWORD,
    Allowances,
    Fault,
    IgStub,
    IgStubState,
    start_stub,
    stop_stub,
)

pytestmark = pytest.mark.integration

EPIC = EURUSD_MINI
EURGBP = "CS.D.EURGBP.MINI.IP"
T0 = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)
UNITS = 20_000.0
"""Two mini contracts of 10,000 EUR."""


@dataclass
class Harness:
    stub: IgStub
    broker: IgBroker
    client: IgClient
    clock: FakeClock
    slept: list[float]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    clock = FakeClock(T0)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        # Time passes for the limiter, the stub's minute windows and its confirmations alike.
        slept.append(seconds)
        clock.advance(timedelta(seconds=seconds))

    state = IgStubState(clock=clock.now)
    state.markets[EURGBP] = ig_responses.market_body(
        EURGBP, currencies=(("GBP", True), ("EUR", False)), min_deal_size=0.5
    )
    state.prices[EURGBP] = 0.86
    stub, runner, url = await start_stub(state)
    http = httpx.AsyncClient(base_url=url, timeout=1.0)
    client = IgClient(
        http,
        IgCredentials(SecretStr(API_KEY), IDENTIFIER, SecretStr(PASSWORD)),
        limiter=InProcessRateLimiter(clock),
        sleep=sleep,
    )
    broker = IgBroker(client, {"EURUSD": EPIC}, clock=clock, sleep=sleep)
    try:
        yield Harness(stub, broker, client, clock, slept)
    finally:
        await http.aclose()
        await stop_stub(stub, runner)


def _order(order_id: str = "ord-1", **changes: object) -> WorkingOrder:
    fields: dict[str, object] = {
        "order_id": order_id,
        "strategy": "sma_cross",
        "symbol": "EURUSD",
        "side": Side.BUY,
        "quantity": UNITS,
        "signal_time": datetime(2024, 1, 2, tzinfo=UTC),
        "price_floor": 1.0,
        "price_ceiling": 1.2,
    }
    fields.update(changes)
    return WorkingOrder(**fields)  # type: ignore[arg-type]


def _posted(stub: IgStub) -> list[dict[str, object]]:
    return list(stub.state.positions.values())


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
    assert await harness.broker.positions() == {"EURUSD": UNITS}


async def test_deal_reference_is_stable_and_fits_igs_pattern() -> None:
    reference = deal_reference("ord-0123456789-abcdef-long-order-identifier")
    assert reference == deal_reference("ord-0123456789-abcdef-long-order-identifier")
    assert reference != deal_reference("ord-2")
    assert len(reference) <= 30
    assert reference.isalnum()


async def test_size_is_contracts_of_the_markets_contract_size_rounded_down_to_its_step(
    harness: Harness,
) -> None:
    # Arrange: the mini contract is 10,000 EUR, the minimum 0.5 contracts (sizes in 0.1)
    # Act
    confirmation = await harness.broker.open_position(_order(quantity=25_080.0))
    # Assert: 2.508 contracts -> 2.5 (never more than approved); the fill is 25,000 units
    [position] = _posted(harness.stub)
    assert position["size"] == 2.5
    assert confirmation.size == 2.5
    assert harness.broker.quantity("EURUSD", 2.5) == 25_000.0


async def test_order_below_the_minimum_deal_size_is_refused_before_sending(
    harness: Harness,
) -> None:
    # Act / Assert: 2 units would be 0.0002 contracts
    with pytest.raises(IgRequestRejectedError, match=r"minimum deal size is 0\.5") as raised:
        await harness.broker.open_position(_order(quantity=2.0))
    assert raised.value.code == "below_minimum_size"
    assert harness.stub.state.deal_posts == {}


async def test_currency_is_one_the_market_deals_in(harness: Harness) -> None:
    # Arrange: EUR/GBP deals in GBP (default) or EUR, not USD
    harness.broker.epics["EURGBP"] = EURGBP
    # Act
    confirmation = await harness.broker.open_position(_order(symbol="EURGBP"))
    # Assert
    assert confirmation.accepted, confirmation.reason
    [position] = _posted(harness.stub)
    assert position["currency"] == "GBP"


async def test_market_details_are_read_once_per_epic(harness: Harness) -> None:
    # Act
    await harness.broker.open_position(_order("ord-1"))
    await harness.broker.open_position(_order("ord-2", side=Side.SELL))
    await harness.broker.positions()
    # Assert
    reads = [r for r in harness.stub.state.requests if r[1] == f"/markets/{EPIC}"]
    assert len(reads) == 1


async def test_unknown_epic_is_refused_with_igs_reason(harness: Harness) -> None:
    # Arrange
    harness.broker.epics["EURUSD"] = "CS.D.NOSUCH.MINI.IP"
    # Act / Assert
    with pytest.raises(IgRequestRejectedError) as raised:
        await harness.broker.open_position(_order())
    assert raised.value.code == "error.public-api.epic-not-found"
    assert harness.stub.state.deal_posts == {}


async def test_fx_pair_without_a_configured_epic_deals_its_mini_contract(harness: Harness) -> None:
    # Arrange
    broker = IgBroker(harness.client, {}, clock=harness.clock)
    # Act
    confirmation = await broker.open_position(_order())
    # Assert
    assert confirmation.accepted
    assert confirmation.epic == EPIC


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
        limiter=InProcessRateLimiter(harness.clock),
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


async def test_allowances_come_from_the_account_and_keep_requests_under_them(
    harness: Harness,
) -> None:
    # Arrange: this key's account may make 5 non-trading requests a minute
    harness.stub.state.allowances = Allowances(account_overall=5)
    # Act: twelve balance reads
    for _ in range(12):
        await harness.broker.balance()
    # Assert: IG never had to refuse one; the adapter waited for the window instead
    assert harness.client.allowances.account_overall == 5
    assert harness.stub.state.allowance_refusals == 0
    assert sum(harness.slept) >= 120.0


async def test_ingestion_and_execution_draw_on_the_same_allowance_keys() -> None:
    # The shared limiter only shares what both services name alike.
    for kind in ("application", "non-trading", "trading"):
        assert allowance_key("k", "ACC", kind) == ingestion_allowance_key("k", "ACC", kind)


async def test_500_after_the_deal_is_done_is_not_resent(harness: Harness) -> None:
    # Arrange: IG makes the deal but the reply is a 500
    harness.stub.state.faults.append(Fault("POST", "/positions/otc", "500_after_deal"))
    # Act
    confirmation = await harness.broker.open_position(_order())
    # Assert: the adapter asked /confirms and found the deal instead of dealing again
    assert confirmation.accepted
    assert harness.stub.state.deal_posts == {deal_reference("ord-1"): 1}
    assert len(harness.stub.state.positions) == 1


async def test_reply_lost_past_the_confirmations_minute_finds_the_position_not_a_resend(
    harness: Harness,
) -> None:
    # Arrange: the deal is done, the reply lost, and IG no longer keeps the confirmation
    harness.stub.state.confirm_lifetime = timedelta(0)
    harness.stub.state.faults.append(Fault("POST", "/positions/otc", "500_after_deal"))
    # Act
    confirmation = await harness.broker.open_position(_order())
    # Assert: found among the open positions by its deal reference; no second position
    assert confirmation.accepted
    assert (confirmation.level, confirmation.size) == (1.1, 2.0)
    assert harness.stub.state.deal_posts == {deal_reference("ord-1"): 1}
    assert len(harness.stub.state.positions) == 1


async def test_deal_closed_again_before_the_check_is_found_in_the_activity(
    harness: Harness,
) -> None:
    # Arrange: dealt, reply lost, confirmation gone, and the position already stopped out
    harness.stub.state.confirm_lifetime = timedelta(0)
    await harness.broker.market(EPIC)
    harness.stub.state.faults.append(Fault("POST", "/positions/otc", "500_after_deal"))
    original = harness.stub._open

    def open_then_stop_out(reference: str, body: dict[str, object]) -> None:
        original(reference, body)
        harness.stub.state.close_all(EPIC)

    harness.stub._open = open_then_stop_out  # type: ignore[method-assign]
    # Act
    confirmation = await harness.broker.open_position(_order())
    # Assert
    assert confirmation.accepted
    assert confirmation.level == 1.1
    assert harness.stub.state.deal_posts == {deal_reference("ord-1"): 1}


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
    assert working["orderSize"] == 2.0


async def test_working_order_whose_confirmation_expired_is_found_in_the_activity(
    harness: Harness,
) -> None:
    # Arrange
    await harness.broker.open_position(
        _order("ord-limit", order_type=OrderType.LIMIT, limit_price=1.05)
    )
    harness.stub.state.expire_confirms()
    # Act
    confirmation = await harness.broker.confirmation(deal_reference("ord-limit"))
    # Assert
    assert confirmation is not None
    assert confirmation.accepted
    assert confirmation.deal_id in {o["dealId"] for o in harness.stub.state.working_orders.values()}


async def test_close_position_flattens_it(harness: Harness) -> None:
    await harness.broker.open_position(_order())
    confirmation = await harness.broker.close_position("EURUSD", Side.SELL, UNITS, "ord-close")
    assert confirmation.accepted
    assert await harness.broker.positions() == {}
    assert ("POST", "/positions/otc", "DELETE") in harness.stub.state.requests


async def test_verdict_found_once_is_not_asked_of_ig_again(harness: Harness) -> None:
    # Arrange: a resting order, its confirmation since forgotten by IG
    await harness.broker.open_position(
        _order("ord-limit", order_type=OrderType.LIMIT, limit_price=1.05)
    )
    harness.stub.state.expire_confirms()
    reference = deal_reference("ord-limit")
    first = await harness.broker.confirmation(reference)
    asked = len(harness.stub.state.requests)
    # Act: the periodic settling asks again, and again
    again = [await harness.broker.confirmation(reference) for _ in range(3)]
    # Assert
    assert first is not None
    assert again == [first] * 3
    assert len(harness.stub.state.requests) == asked
