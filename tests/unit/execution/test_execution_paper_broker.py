"""The paper broker fills at the next bar's open, with commission, whatever the arrival order."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tai_core.clock import FakeClock
from tai_core.signing import ApprovalSigner, ApprovalVerifier
from tai_events import OrderApproved, OrderRequested, Side, TradingState
from tai_execution.paper import (
    PaperBracketArmed,
    PaperBroker,
    PaperBrokerConfig,
    PaperFill,
    PaperRejection,
    WorkingOrder,
)
from tai_execution.verification import check_approval
from tai_risk.checks import RiskLimits
from tai_risk.engine import RiskEngine
from tai_risk.state import PortfolioState
from tests.factories import make_bar


def _order(signal_index: int, side: Side = Side.BUY, quantity: float = 1000) -> WorkingOrder:
    bar = make_bar(signal_index, 1.1)
    return WorkingOrder(
        order_id=f"ord-{signal_index}",
        strategy="sma_cross",
        symbol="EURUSD",
        side=side,
        quantity=quantity,
        signal_time=bar.closed_at,
        price_floor=1.0,
        price_ceiling=1.3,
    )


def test_order_fills_at_the_next_bar_open_with_commission() -> None:
    # Arrange
    broker = PaperBroker(PaperBrokerConfig(commission_rate=0.001))
    broker.on_bar(make_bar(0, 1.1))
    # Act
    assert broker.submit(_order(0)) is None
    results = broker.on_bar(make_bar(1, 1.2, open_=1.15))
    # Assert
    assert len(results) == 1
    fill = results[0]
    assert isinstance(fill, PaperFill)
    assert fill.price == 1.15
    assert fill.commission == pytest.approx(1000 * 1.15 * 0.001)
    assert fill.filled_at == make_bar(1, 1.2).opened_at


def test_approval_arriving_after_the_next_bar_fills_at_that_bar_not_a_later_one() -> None:
    # Arrange: the broker has already seen bars 1 and 2 when the approval for bar 0 arrives
    broker = PaperBroker()
    for index, open_ in [(0, 1.10), (1, 1.11), (2, 1.12)]:
        broker.on_bar(make_bar(index, 1.1, open_=open_))
    # Act
    result = broker.submit(_order(0))
    # Assert
    assert isinstance(result, PaperFill)
    assert result.price == 1.11


def test_redelivered_older_bar_cannot_trigger_a_bracket_armed_after_it() -> None:
    # Arrange: a bracketed entry fills at bar 2 (its stop at 1.05) after bars 0-2 were seen
    broker = PaperBroker()
    for index in range(3):
        broker.on_bar(make_bar(index, 1.1))
    entry = replace(_order(1), stop_loss=1.05, take_profit=1.30)
    [fill, armed] = broker.submit_all(entry)
    assert isinstance(fill, PaperFill)
    assert isinstance(armed, PaperBracketArmed)
    # Act: bar 1 comes back (a redelivery after a restart) with a low through the stop
    crash = make_bar(1, 1.0, open_=1.1)
    results = broker.on_bar(crash)
    # Assert: the old bar is ignored; the bracket still protects the position
    assert results == []
    assert len(broker.armed_brackets()) == 1
    assert broker.positions() == {"EURUSD": 1000}


def test_approval_older_than_the_kept_bars_names_the_span_and_fills_from_it() -> None:
    # Arrange: bars 0-2 were handled long ago; only bars 3 and 4 are still kept
    broker = PaperBroker()
    stored = [make_bar(index, 1.1, open_=1.10 + index / 100) for index in range(5)]
    for bar in stored[3:]:
        broker.on_bar(bar)
    order = _order(0)
    # Act
    gap = broker.missing_history(order)
    [fill] = broker.submit_all(order, stored[:3])
    # Assert: the span between the signal and the oldest kept bar; the fill at bar 1's open
    assert gap == (order.signal_time, stored[3].opened_at)
    assert isinstance(fill, PaperFill)
    assert fill.price == pytest.approx(1.11)
    assert broker.missing_history(_order(3)) is None


def test_fill_outside_the_approved_band_is_rejected() -> None:
    broker = PaperBroker()
    broker.submit(_order(0))
    [result] = broker.on_bar(make_bar(1, 2.0, open_=2.0))
    assert isinstance(result, PaperRejection)
    assert "outside the approved band" in result.reason


def test_slippage_is_adverse_for_both_sides() -> None:
    broker = PaperBroker(PaperBrokerConfig(slippage_bps=10))
    broker.submit(_order(0, Side.BUY))
    broker.submit(
        WorkingOrder(
            "ord-s", "sma_cross", "EURUSD", Side.SELL, 1.0, make_bar(0, 1).closed_at, 1.0, 1.3
        )
    )
    results = broker.on_bar(make_bar(1, 1.2, open_=1.2))
    prices = {
        result.order.side: result.price for result in results if isinstance(result, PaperFill)
    }
    assert prices[Side.BUY] == pytest.approx(1.2 * 1.001)
    assert prices[Side.SELL] == pytest.approx(1.2 * 0.999)


def test_same_order_submitted_twice_is_held_once() -> None:
    broker = PaperBroker()
    broker.submit(_order(0))
    broker.submit(_order(0))
    assert len(broker.working_orders()) == 1
    assert len(broker.on_bar(make_bar(1, 1.1))) == 1


def _approval(signer: ApprovalSigner, clock: FakeClock) -> OrderApproved:
    # a portfolio without bars: only the approval's signature matters here
    engine = RiskEngine(RiskLimits(require_market_data=False), signer, clock)
    request = OrderRequested(
        order_id="ord-1",
        strategy="sma_cross",
        symbol="EURUSD",
        side=Side.BUY,
        quantity=1000,
        reference_price=1.1,
        signal_time=clock.now(),
        requested_at=clock.now(),
    )
    decision = engine.check(request, PortfolioState(equity=100_000), TradingState.ACTIVE)
    assert decision.approval is not None
    return decision.approval


def test_valid_approval_is_accepted(
    signer: ApprovalSigner, verifier: ApprovalVerifier, clock: FakeClock
) -> None:
    approval = _approval(signer, clock)
    assert check_approval(approval, verifier, clock.now()).accepted


def test_expired_approval_is_refused(
    signer: ApprovalSigner, verifier: ApprovalVerifier, clock: FakeClock
) -> None:
    approval = _approval(signer, clock)
    clock.advance(timedelta(minutes=6))
    check = check_approval(approval, verifier, clock.now())
    assert (check.accepted, check.code) == (False, "approval_expired")


def test_altered_approval_is_refused(
    signer: ApprovalSigner, verifier: ApprovalVerifier, clock: FakeClock
) -> None:
    approval = _approval(signer, clock).model_copy(update={"quantity": 1_000_000.0})
    check = check_approval(approval, verifier, clock.now())
    assert (check.accepted, check.code) == (False, "approval_signature_invalid")
