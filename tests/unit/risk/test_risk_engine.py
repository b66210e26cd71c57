"""RiskEngine decisions, without a broker: each rule at, below and above its limit."""

from __future__ import annotations

import pytest

from tai_core.clock import FakeClock
from tai_core.signing import ApprovalSigner, ApprovalVerifier
from tai_events import OrderRequested, Side, TradingState
from tai_risk.checks import RiskLimits
from tai_risk.engine import RiskEngine
from tai_risk.state import PortfolioState
from tests.factories import T0

PRICE = 1.25

NO_BARS_LIMITS = RiskLimits(require_market_data=False)
"""Default limits for portfolios priced without bars (market-data freshness has its own tests)."""


def _request(
    side: Side = Side.BUY, quantity: float = 10_000, **overrides: object
) -> OrderRequested:
    fields: dict[str, object] = {
        "order_id": f"ord-{side.value}-{quantity}",
        "strategy": "sma_cross",
        "symbol": "EURUSD",
        "side": side,
        "quantity": quantity,
        "reference_price": PRICE,
        "signal_time": T0,
        "requested_at": T0,
    }
    fields.update(overrides)
    return OrderRequested.model_validate(fields)


@pytest.fixture
def engine(signer: ApprovalSigner, clock: FakeClock) -> RiskEngine:
    return RiskEngine(NO_BARS_LIMITS, signer, clock)


def _portfolio(position: float = 0.0, last_price: float = PRICE) -> PortfolioState:
    portfolio = PortfolioState(equity=100_000.0, last_prices={"EURUSD": last_price})
    if position:
        portfolio.projected_positions["EURUSD"] = position
    return portfolio


def test_order_within_limits_is_approved_and_signed(
    engine: RiskEngine, verifier: ApprovalVerifier
) -> None:
    decision = engine.check(_request(), _portfolio(), TradingState.ACTIVE)
    assert decision.approved
    assert decision.approval is not None
    assert verifier.verify(decision.approval).valid
    assert decision.approval.quantity == 10_000


def test_order_when_halted_is_rejected(engine: RiskEngine) -> None:
    decision = engine.check(_request(), _portfolio(), TradingState.HALTED)
    assert not decision.approved
    assert decision.rule == "trading_state"


def test_order_that_adds_exposure_is_rejected_when_reducing(engine: RiskEngine) -> None:
    decision = engine.check(_request(Side.BUY, 5_000), _portfolio(10_000), TradingState.REDUCING)
    assert decision.rule == "trading_state"
    assert decision.rejection is not None
    assert decision.rejection.values["position_after"] == 15_000


def test_order_that_shrinks_exposure_is_approved_when_reducing(engine: RiskEngine) -> None:
    decision = engine.check(_request(Side.SELL, 5_000), _portfolio(10_000), TradingState.REDUCING)
    assert decision.approved


# 20 % of 100,000 equity = 20,000 notional; at 1.25 that is 16,000 units.
@pytest.mark.parametrize(
    ("quantity", "approved_quantity", "sized_by"),
    [(15_999, 15_999, "requested"), (16_000, 16_000, "requested"), (16_001, 16_000, None)],
)
def test_position_notional_limit_at_below_and_above_cuts_to_the_limit(
    engine: RiskEngine, quantity: float, approved_quantity: float, sized_by: str | None
) -> None:
    decision = engine.check(_request(quantity=quantity), _portfolio(), TradingState.ACTIVE)
    assert decision.approval is not None
    assert decision.approval.quantity == approved_quantity
    assert decision.approval.sized_by == (sized_by or "max_position_notional")


def test_position_notional_rejects_when_the_position_already_uses_the_limit(
    engine: RiskEngine,
) -> None:
    decision = engine.check(_request(quantity=1_000), _portfolio(16_000), TradingState.ACTIVE)
    assert decision.rule == "max_position_notional"
    assert decision.rejection is not None
    assert decision.rejection.values["limit"] == pytest.approx(20_000)


def test_reversal_is_judged_on_the_resulting_position(engine: RiskEngine) -> None:
    # long 10,000 then sell 20,000: the result is short 10,000 (12,500 notional), within limit
    decision = engine.check(_request(Side.SELL, 20_000), _portfolio(10_000), TradingState.ACTIVE)
    assert decision.approved


# 5 % from the last price 1.25: 1.3125 is exactly at the limit.
@pytest.mark.parametrize(("reference", "approved"), [(1.30, True), (1.3125, True), (1.32, False)])
def test_fat_finger_price_limit(engine: RiskEngine, reference: float, approved: bool) -> None:
    decision = engine.check(
        _request(quantity=1_000, reference_price=reference), _portfolio(), TradingState.ACTIVE
    )
    assert decision.approved is approved
    if not approved:
        assert decision.rule == "price_deviation"


def test_duplicate_order_id_is_refused(engine: RiskEngine) -> None:
    portfolio = _portfolio()
    request = _request()
    portfolio.decided_order_ids.add(request.order_id)
    decision = engine.check(request, portfolio, TradingState.ACTIVE)
    assert decision.rule == "duplicate_order"


def test_max_open_positions(signer: ApprovalSigner, clock: FakeClock) -> None:
    # Arrange
    engine = RiskEngine(NO_BARS_LIMITS.model_copy(update={"max_open_positions": 2}), signer, clock)
    portfolio = PortfolioState(equity=100_000.0, projected_positions={"GBPUSD": 1.0, "USDJPY": 1.0})
    # Act
    opening = engine.check(_request(quantity=100), portfolio, TradingState.ACTIVE)
    portfolio.projected_positions["EURUSD"] = 100.0
    adding = engine.check(_request(quantity=100, order_id="ord-x"), portfolio, TradingState.ACTIVE)
    # Assert
    assert opening.rule == "max_open_positions"
    assert adding.approved


def test_approval_expires_after_the_configured_time(engine: RiskEngine, clock: FakeClock) -> None:
    decision = engine.check(_request(), _portfolio(), TradingState.ACTIVE)
    assert decision.approval is not None
    assert (decision.approval.expires_at - clock.now()).total_seconds() == 300
    assert decision.approval.price_floor < PRICE < decision.approval.price_ceiling
