"""Properties of the VaR/CVaR the engine computes (candidate included, horizon-scaled)."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tai_events import OrderRequested, Side
from tai_events.market import Timeframe
from tai_quant.risk import RiskMethod
from tai_risk.checks import RiskLimits, check_value_at_risk, tail_risk
from tai_risk.state import PortfolioState
from tests.factories import T0, make_bar

RETURNS = arrays(
    np.float64,
    st.integers(min_value=40, max_value=120),
    elements=st.floats(min_value=-0.05, max_value=0.05, allow_nan=False, width=64),
)
LONG_LOOKBACK = RiskLimits(return_lookback_days=10_000)
"""Every generated daily return inside the lookback window."""


def _portfolio(returns: np.ndarray, timeframe: Timeframe = Timeframe.H1) -> PortfolioState:
    portfolio = PortfolioState(100_000.0)
    price = 1.0
    portfolio.market.on_bar(make_bar(0, price, timeframe=timeframe))
    for index, change in enumerate(returns, start=1):
        price *= 1.0 + change
        portfolio.market.on_bar(make_bar(index, price, timeframe=timeframe))
    portfolio.last_prices["EURUSD"] = 1.0
    return portfolio


def _measured_returns(portfolio: PortfolioState) -> np.ndarray:
    frame = portfolio.market.returns(("EURUSD",), None)
    return frame["EURUSD"].to_numpy()


@settings(max_examples=60, deadline=None)
@given(RETURNS, st.sampled_from([RiskMethod.HISTORICAL, RiskMethod.PARAMETRIC]))
def test_cvar_is_never_below_var(returns: np.ndarray, method: RiskMethod) -> None:
    portfolio = _portfolio(returns)
    limits = RiskLimits(var_method=method)
    for confidence in (0.95, 0.975, 0.99):
        estimate = tail_risk({"EURUSD": 10_000.0}, portfolio, limits, confidence)
        assert estimate is not None
        assert estimate.expected_shortfall >= estimate.value_at_risk - 1e-9


@settings(max_examples=60, deadline=None)
@given(RETURNS, st.sampled_from([RiskMethod.HISTORICAL, RiskMethod.PARAMETRIC]))
def test_var_is_monotone_in_confidence(returns: np.ndarray, method: RiskMethod) -> None:
    portfolio = _portfolio(returns)
    limits = RiskLimits(var_method=method)
    values = [
        tail_risk({"EURUSD": 10_000.0}, portfolio, limits, confidence)
        for confidence in (0.9, 0.95, 0.975, 0.99)
    ]
    losses = [estimate.value_at_risk for estimate in values if estimate is not None]
    assert len(losses) == 4
    assert all(later >= earlier - 1e-9 for earlier, later in itertools.pairwise(losses))


@settings(max_examples=60, deadline=None)
@given(RETURNS, st.floats(min_value=1.0, max_value=1e6))
def test_daily_historical_var_of_a_known_sample_is_its_quantile(
    returns: np.ndarray, notional: float
) -> None:
    # daily bars and a 1-day horizon: no scaling, so VaR = -notional x the 5 % quantile
    portfolio = _portfolio(returns, Timeframe.D1)
    sample = np.sort(_measured_returns(portfolio))
    rank = math.ceil(len(sample) * 0.05)
    estimate = tail_risk({"EURUSD": notional}, portfolio, LONG_LOOKBACK, 0.95)
    assert estimate is not None
    assert math.isclose(estimate.value_at_risk, -notional * sample[rank - 1], abs_tol=1e-9)


@settings(max_examples=40, deadline=None)
@given(RETURNS)
def test_hourly_var_is_scaled_to_one_day_by_the_square_root_of_time(returns: np.ndarray) -> None:
    hourly = tail_risk({"EURUSD": 1_000.0}, _portfolio(returns), LONG_LOOKBACK, 0.95)
    daily = tail_risk({"EURUSD": 1_000.0}, _portfolio(returns, Timeframe.D1), LONG_LOOKBACK, 0.95)
    assert hourly is not None
    assert daily is not None
    assert math.isclose(hourly.value_at_risk, daily.value_at_risk * math.sqrt(24), abs_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(RETURNS, st.floats(min_value=100.0, max_value=50_000.0), st.floats(0.01, 10.0))
def test_the_var_check_approves_exactly_when_var_with_the_candidate_is_within_the_limit(
    returns: np.ndarray, quantity: float, limit_pct: float
) -> None:
    # Arrange
    portfolio = _portfolio(returns)
    portfolio.projected_positions["EURUSD"] = 1_000.0
    limits = RiskLimits(max_var_pct=limit_pct, max_cvar_pct=100.0)
    request = OrderRequested(
        order_id="ord-prop",
        strategy="sma_cross",
        symbol="EURUSD",
        side=Side.BUY,
        quantity=quantity,
        reference_price=1.0,
        signal_time=T0,
        requested_at=T0,
    )
    expected = tail_risk({"EURUSD": 1_000.0 + quantity}, portfolio, limits, 0.95)
    assert expected is not None
    # Act
    verdict = check_value_at_risk(request, portfolio, limits)
    # Assert
    within = expected.value_at_risk <= 100_000.0 * limit_pct / 100.0 + 1e-9
    assert verdict.passed is within
