"""Risk sizes intents from the live account and shrinks orders to fit its limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tai_core.clock import FakeClock
from tai_core.signing import ApprovalSigner
from tai_events.orders import OrderRequested, Side, TradingStyle
from tai_events.risk import TradingState
from tai_risk.checks import RiskLimits
from tai_risk.engine import LIMITS, RiskEngine
from tai_risk.state import PortfolioState

T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
EQUITY = 100_000.0
PRICE = 1.5

NO_BARS_LIMITS = RiskLimits(require_market_data=False)
"""Default limits for portfolios priced without bars (market-data freshness has its own tests)."""


def _intent(**overrides: object) -> OrderRequested:
    fields: dict[str, object] = {
        "order_id": "ord-1",
        "strategy": "swing",
        "symbol": "EURUSD",
        "side": Side.BUY,
        "reference_price": PRICE,
        "stop_loss": 1.49,  # 0.01 to the stop
        "take_profit": 1.53,
        "risk_budget_pct": 2.5,
        "style": TradingStyle.SWING,
        "signal_time": T0,
        "requested_at": T0,
    }
    fields.update(overrides)
    return OrderRequested.model_validate(fields)


@pytest.fixture
def wide_engine(signer: ApprovalSigner, clock: FakeClock) -> RiskEngine:
    """An engine whose exposure limits do not bind: sizing alone decides."""
    limits = RiskLimits(
        require_market_data=False,
        max_position_notional_pct=1_000,
        max_gross_leverage=1_000,
        max_margin_utilisation_pct=100,
        max_correlated_exposure_pct=100_000,
        default_margin_rate=0.0001,
    )
    return RiskEngine(limits, signer, clock)


def _portfolio(equity: float = EQUITY) -> PortfolioState:
    return PortfolioState(equity=equity, last_prices={"EURUSD": PRICE})


def test_intent_is_sized_from_equity_budget_and_stop(wide_engine: RiskEngine) -> None:
    # Arrange: 2.5 % of 100,000 = 2,500 at risk; 0.01 to the stop -> 250,000 units
    request = _intent()
    # Act
    decision = wide_engine.check(request, _portfolio(), TradingState.ACTIVE)
    # Assert
    assert decision.approval is not None
    assert decision.approval.quantity == 250_000
    assert decision.approval.requested_quantity is None
    assert decision.approval.sized_by == "risk_budget"


def test_intent_sizes_follow_the_live_equity(wide_engine: RiskEngine) -> None:
    decision = wide_engine.check(_intent(), _portfolio(50_000.0), TradingState.ACTIVE)
    assert decision.approval is not None
    assert decision.approval.quantity == 125_000


def test_a_budget_above_the_style_cap_is_cut_to_the_cap(wide_engine: RiskEngine) -> None:
    # scalping's cap is 1 %: a 5 % budget sizes at 1 % -> 100,000 units
    request = _intent(style=TradingStyle.SCALPING, risk_budget_pct=5.0)
    decision = wide_engine.check(request, _portfolio(), TradingState.ACTIVE)
    assert decision.approval is not None
    assert decision.approval.quantity == 100_000
    assert decision.approval.sized_by == "risk_per_trade"


def test_fractional_kelly_below_the_budget_sets_the_size(wide_engine: RiskEngine) -> None:
    # p = 0.45, payoff 3: Kelly = 0.45 - 0.55 / 3 = 0.2667; x 0.25 = 6.67 % > 2.5 % budget
    # p = 0.30, payoff 3: Kelly = 0.30 - 0.70 / 3 = 0.0667; x 0.25 = 1.67 % < 2.5 % budget
    decision = wide_engine.check(_intent(win_probability=0.30), _portfolio(), TradingState.ACTIVE)
    assert decision.approval is not None
    assert decision.approval.sized_by == "kelly"
    assert decision.approval.quantity == pytest.approx(166_666, abs=1)


def test_intent_without_edge_is_rejected(wide_engine: RiskEngine) -> None:
    decision = wide_engine.check(_intent(win_probability=0.2), _portfolio(), TradingState.ACTIVE)
    assert decision.rule == "sizing"


def test_intent_without_stop_or_atr_cannot_be_sized(wide_engine: RiskEngine) -> None:
    decision = wide_engine.check(_intent(stop_loss=None), _portfolio(), TradingState.ACTIVE)
    assert decision.rule == "sizing"
    assert decision.rejection is not None
    assert "cannot be sized" in decision.rejection.reason


def test_default_limits_shrink_an_intent_to_the_notional_cap(
    signer: ApprovalSigner, clock: FakeClock
) -> None:
    # Arrange: the budget wants 250,000 units; 20 % of equity at 1.5 is 13,333 units
    engine = RiskEngine(NO_BARS_LIMITS, signer, clock)
    # Act
    decision = engine.check(_intent(), _portfolio(), TradingState.ACTIVE)
    # Assert
    assert decision.approval is not None
    assert decision.approval.quantity == 13_333
    assert decision.approval.sized_by == "max_position_notional"


def test_reduce_only_exit_is_cut_to_what_the_strategy_holds(wide_engine: RiskEngine) -> None:
    portfolio = _portfolio()
    portfolio.record_approval("EURUSD", Side.BUY, 7_000, "swing")
    request = _intent(
        side=Side.SELL, quantity=9_000, reduce_only=True, stop_loss=None, take_profit=None
    )
    decision = wide_engine.check(request, portfolio, TradingState.ACTIVE)
    assert decision.approval is not None
    assert decision.approval.quantity == 7_000
    assert decision.approval.reduce_only
    assert decision.approval.sized_by == "position_held"


def test_reduce_only_exit_for_a_position_not_held_is_rejected(wide_engine: RiskEngine) -> None:
    portfolio = _portfolio()
    portfolio.record_approval("EURUSD", Side.BUY, 7_000, "scalping")  # another strategy's
    request = _intent(
        side=Side.SELL, quantity=7_000, reduce_only=True, stop_loss=None, take_profit=None
    )
    decision = wide_engine.check(request, portfolio, TradingState.ACTIVE)
    assert decision.rule == "reduce_only"


def test_reduce_only_exit_passes_while_reducing(wide_engine: RiskEngine) -> None:
    portfolio = _portfolio()
    portfolio.record_approval("EURUSD", Side.BUY, 7_000, "swing")
    portfolio.record_approval("EURUSD", Side.BUY, 3_000, "scalping")
    request = _intent(
        side=Side.SELL, quantity=7_000, reduce_only=True, stop_loss=None, take_profit=None
    )
    decision = wide_engine.check(request, portfolio, TradingState.REDUCING)
    assert decision.approved


def test_an_order_without_quantity_must_state_a_budget() -> None:
    with pytest.raises(ValueError, match="risk_budget_pct"):
        _intent(risk_budget_pct=None)


@settings(max_examples=60, deadline=None)
@given(
    equity=st.floats(1_000, 10_000_000),
    budget=st.floats(0.1, 3.0),
    stop_distance=st.floats(0.0005, 0.2),
    held=st.floats(-50_000, 50_000),
)
def test_every_approved_size_passes_every_limit(
    signer: ApprovalSigner, equity: float, budget: float, stop_distance: float, held: float
) -> None:
    # Arrange
    engine = RiskEngine(NO_BARS_LIMITS, signer, FakeClock(T0))
    portfolio = _portfolio(equity)
    if abs(held) >= 1:
        portfolio.record_approval("EURUSD", Side.BUY if held > 0 else Side.SELL, abs(held), "x")
    request = _intent(risk_budget_pct=budget, stop_loss=PRICE - stop_distance, take_profit=None)
    # Act
    decision = engine.check(request, portfolio, TradingState.ACTIVE)
    # Assert: what was approved is whole and passes every limit as it stands
    if decision.approval is not None:
        quantity = decision.approval.quantity
        assert quantity == int(quantity)
        assert quantity >= 1
        sized = request.model_copy(update={"quantity": quantity})
        for limit in LIMITS:
            assert limit(sized, portfolio, engine.limits).passed, limit.__name__
