"""Each pre-trade rule at, below and above its limit (rule functions and the engine)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from tai_core.clock import FakeClock
from tai_core.signing import ApprovalSigner, ApprovalVerifier
from tai_events import OrderRequested, Side, TradingState
from tai_events.market import Timeframe
from tai_risk.checks import (
    RiskLimits,
    check_correlated_exposure,
    check_gross_leverage,
    check_margin_utilisation,
    check_market_data,
    check_open_positions,
    check_order_rate,
    check_risk_per_trade,
    check_value_at_risk,
    size_order,
    tail_risk,
)
from tai_risk.engine import RiskEngine
from tai_risk.state import PortfolioState
from tests.factories import T0, make_bar

EQUITY = 100_000.0


def _request(side: Side = Side.BUY, quantity: float = 1_000, **overrides: object) -> OrderRequested:
    fields: dict[str, object] = {
        "order_id": "ord-1",
        "strategy": "sma_cross",
        "symbol": "EURUSD",
        "side": side,
        "quantity": quantity,
        "reference_price": 1.5,
        "signal_time": T0,
        "requested_at": T0,
    }
    fields.update(overrides)
    return OrderRequested.model_validate(fields)


def _with_history(
    portfolio: PortfolioState, symbol: str, returns: np.ndarray, start_price: float = 1.0
) -> None:
    price = start_price
    portfolio.market.on_bar(make_bar(0, price, symbol=symbol))
    for index, change in enumerate(returns, start=1):
        price *= 1.0 + change
        portfolio.market.on_bar(make_bar(index, price, symbol=symbol))


# --- risk per trade: stop 1.25 under 1.5 -> 0.25 per unit; 2 % of 100,000 = 2,000 -> 8,000 units


@pytest.mark.parametrize(("quantity", "passed"), [(7_999, True), (8_000, True), (8_001, False)])
def test_risk_per_trade_at_below_and_above_two_percent(quantity: float, passed: bool) -> None:
    verdict = check_risk_per_trade(
        _request(quantity=quantity, stop_loss=1.25), PortfolioState(EQUITY), RiskLimits()
    )
    assert verdict.passed is passed
    assert verdict.values["limit"] == pytest.approx(2_000)
    if not passed:
        assert verdict.rule == "risk_per_trade"
        assert verdict.values["at_risk"] == pytest.approx(8_001 * 0.25)


@pytest.mark.parametrize(("quantity", "passed"), [(3_999, True), (4_000, True), (4_001, False)])
def test_scalping_strategy_is_capped_at_one_percent(quantity: float, passed: bool) -> None:
    limits = RiskLimits(strategy_styles={"scalper": "scalping"})
    request = _request(quantity=quantity, stop_loss=1.25, strategy="scalper")
    assert check_risk_per_trade(request, PortfolioState(EQUITY), limits).passed is passed


def test_swing_strategy_may_risk_three_percent() -> None:
    limits = RiskLimits(strategy_styles={"swinger": "swing"})
    request = _request(quantity=12_000, stop_loss=1.25, strategy="swinger")
    verdict = check_risk_per_trade(request, PortfolioState(EQUITY), limits)
    assert verdict.passed
    assert verdict.values["limit_pct"] == 3.0


def test_risk_per_trade_without_a_stop_uses_the_atr() -> None:
    # Arrange: a symbol with a warmed-up ATR
    portfolio = PortfolioState(EQUITY)
    _with_history(portfolio, "EURUSD", np.full(30, 0.001))
    atr = portfolio.market.atr("EURUSD")
    assert atr is not None
    limit_units = 2_000 / (2 * atr)
    # Act
    at_limit = check_risk_per_trade(_request(quantity=limit_units * 0.999), portfolio, RiskLimits())
    above = check_risk_per_trade(_request(quantity=limit_units * 1.001), portfolio, RiskLimits())
    # Assert
    assert at_limit.passed
    assert at_limit.values["stop_source"] == "atr"
    assert not above.passed
    assert above.values["stop_distance"] == pytest.approx(2 * atr)


def test_risk_per_trade_without_stop_or_atr_is_not_measurable_and_passes() -> None:
    verdict = check_risk_per_trade(_request(quantity=1e7), PortfolioState(EQUITY), RiskLimits())
    assert verdict.passed
    assert verdict.values["stop_source"] == "unknown"


def test_an_order_that_shrinks_exposure_is_never_refused_for_risk_per_trade() -> None:
    portfolio = PortfolioState(EQUITY)
    portfolio.record_approval("EURUSD", Side.BUY, 100_000, "sma_cross")
    request = _request(Side.SELL, 10_000, stop_loss=1.75)
    assert check_risk_per_trade(request, portfolio, RiskLimits()).passed


def test_netting_against_another_strategy_does_not_escape_risk_per_trade() -> None:
    # Arrange: another strategy is long 100,000; this one opens a short of 10,000
    portfolio = PortfolioState(EQUITY)
    portfolio.record_approval("EURUSD", Side.BUY, 100_000, "scalping")
    request = _request(Side.SELL, 10_000, stop_loss=1.75)
    # Act
    verdict = check_risk_per_trade(request, portfolio, RiskLimits())
    # Assert: 10,000 x 0.25 = 2,500 > 2 % of equity, though the account's position shrinks
    assert not verdict.passed


# --- gross leverage: 10 x 100,000 = 1,000,000; GBPUSD holds 500,000 -> 400,000 EURUSD at 1.25


@pytest.mark.parametrize(
    ("quantity", "passed"), [(399_999, True), (400_000, True), (400_001, False)]
)
def test_gross_leverage_at_below_and_above_ten(quantity: float, passed: bool) -> None:
    portfolio = PortfolioState(
        EQUITY, projected_positions={"GBPUSD": -500_000}, last_prices={"GBPUSD": 1.0}
    )
    request = _request(quantity=quantity, reference_price=1.25)
    verdict = check_gross_leverage(request, portfolio, RiskLimits())
    assert verdict.passed is passed
    if not passed:
        assert verdict.rule == "gross_leverage"
        assert verdict.values["limit"] == 10.0


# --- margin: 5 % margin, 50 % of 100,000 = 50,000 of margin = 1,000,000 gross notional


@pytest.mark.parametrize(
    ("quantity", "passed"), [(399_999, True), (400_000, True), (400_001, False)]
)
def test_margin_utilisation_at_below_and_above_fifty_percent(quantity: float, passed: bool) -> None:
    portfolio = PortfolioState(
        EQUITY, projected_positions={"GBPUSD": 500_000}, last_prices={"GBPUSD": 1.0}
    )
    limits = RiskLimits(default_margin_rate=0.05)
    verdict = check_margin_utilisation(
        _request(quantity=quantity, reference_price=1.25), portfolio, limits
    )
    assert verdict.passed is passed
    if not passed:
        assert verdict.rule == "margin_utilisation"
        assert verdict.values["limit_pct"] == 50.0


def test_margin_rates_apply_per_symbol() -> None:
    portfolio = PortfolioState(EQUITY)
    limits = RiskLimits(default_margin_rate=0.01, margin_rates={"EURUSD": 0.5})
    verdict = check_margin_utilisation(
        _request(quantity=80_001, reference_price=1.25), portfolio, limits
    )
    assert not verdict.passed  # 100,001.25 notional x 0.5 > 50,000


# --- open positions: 10 by default


@pytest.mark.parametrize(("open_positions", "passed"), [(8, True), (9, True), (10, False)])
def test_open_positions_at_below_and_above_ten(open_positions: int, passed: bool) -> None:
    portfolio = PortfolioState(
        EQUITY, projected_positions={f"SYM{index}": 1.0 for index in range(open_positions)}
    )
    assert check_open_positions(_request(), portfolio, RiskLimits()).passed is passed


def test_adding_to_an_open_position_is_allowed_at_the_open_position_limit() -> None:
    positions = {f"SYM{index}": 1.0 for index in range(9)} | {"EURUSD": 1.0}
    portfolio = PortfolioState(EQUITY, projected_positions=positions)
    assert check_open_positions(_request(), portfolio, RiskLimits()).passed


# --- correlated groups: |rho| >= 0.8; 30 % of 100,000 = 30,000; GBPUSD holds 20,000


def _correlated_portfolio(partner_returns: str) -> PortfolioState:
    generator = np.random.default_rng(11)
    base = generator.normal(0, 0.002, 60)
    partner = base if partner_returns == "same" else generator.normal(0, 0.002, 60)
    portfolio = PortfolioState(
        EQUITY, projected_positions={"GBPUSD": 20_000}, last_prices={"GBPUSD": 1.0}
    )
    _with_history(portfolio, "EURUSD", base, start_price=1.25)
    _with_history(portfolio, "GBPUSD", partner)
    portfolio.last_prices["GBPUSD"] = 1.0
    portfolio.last_prices["EURUSD"] = 1.25
    return portfolio


@pytest.mark.parametrize(("quantity", "passed"), [(7_999, True), (8_000, True), (8_001, False)])
def test_correlated_group_exposure_at_below_and_above_thirty_percent(
    quantity: float, passed: bool
) -> None:
    verdict = check_correlated_exposure(
        _request(quantity=quantity, reference_price=1.25),
        _correlated_portfolio("same"),
        RiskLimits(),
    )
    assert verdict.passed is passed
    assert verdict.values["group"] == "EURUSD,GBPUSD"
    if not passed:
        assert verdict.rule == "correlated_exposure"
        assert verdict.values["limit"] == pytest.approx(30_000)


def test_uncorrelated_exposure_is_not_grouped() -> None:
    verdict = check_correlated_exposure(
        _request(quantity=8_001, reference_price=1.25),
        _correlated_portfolio("independent"),
        RiskLimits(),
    )
    assert verdict.passed
    assert verdict.values["group"] == "EURUSD"


def test_correlation_threshold_is_configurable() -> None:
    verdict = check_correlated_exposure(
        _request(quantity=8_001, reference_price=1.25),
        _correlated_portfolio("independent"),
        RiskLimits(correlation_threshold=0.0),
    )
    assert not verdict.passed


# --- VaR 95 % and CVaR 97.5 % with the candidate included


def _var_portfolio() -> PortfolioState:
    portfolio = PortfolioState(EQUITY)
    _with_history(portfolio, "EURUSD", np.random.default_rng(5).normal(0, 0.01, 200), 1.5)
    portfolio.last_prices["EURUSD"] = 1.5
    return portfolio


def _measured(quantity: float, confidence: float) -> tuple[float, float]:
    portfolio = _var_portfolio()
    estimate = tail_risk({"EURUSD": quantity * 1.5}, portfolio, RiskLimits(), confidence)
    assert estimate is not None
    return estimate.value_at_risk, estimate.expected_shortfall


@pytest.mark.parametrize(("factor", "passed"), [(1.01, True), (1.0, True), (0.99, False)])
def test_var_limit_at_below_and_above(factor: float, passed: bool) -> None:
    var, _ = _measured(10_000, 0.95)
    limits = RiskLimits(max_var_pct=var / EQUITY * 100 * factor, max_cvar_pct=100)
    verdict = check_value_at_risk(_request(quantity=10_000), _var_portfolio(), limits)
    assert verdict.passed is passed
    assert verdict.values["var"] == pytest.approx(var, abs=1e-6)
    if not passed:
        assert verdict.rule == "value_at_risk"


@pytest.mark.parametrize(("factor", "passed"), [(1.01, True), (1.0, True), (0.99, False)])
def test_cvar_limit_at_below_and_above(factor: float, passed: bool) -> None:
    _, cvar = _measured(10_000, 0.975)
    limits = RiskLimits(max_var_pct=100, max_cvar_pct=cvar / EQUITY * 100 * factor)
    verdict = check_value_at_risk(_request(quantity=10_000), _var_portfolio(), limits)
    assert verdict.passed is passed
    if not passed:
        assert verdict.rule == "expected_shortfall"
        assert verdict.values["cvar"] == pytest.approx(cvar, abs=1e-6)


def test_var_counts_the_candidate_with_the_existing_position() -> None:
    # Arrange: 10,000 held, 10,000 more requested -> VaR of 20,000
    portfolio = _var_portfolio()
    portfolio.projected_positions["EURUSD"] = 10_000
    var_of_both, _ = _measured(20_000, 0.95)
    var_of_candidate, _ = _measured(10_000, 0.95)
    limits = RiskLimits(max_var_pct=(var_of_candidate + var_of_both) / 2 / EQUITY * 100)
    # Act
    verdict = check_value_at_risk(_request(quantity=10_000), portfolio, limits)
    # Assert
    assert not verdict.passed
    assert verdict.values["var"] == pytest.approx(var_of_both, abs=1e-6)


@pytest.mark.parametrize("method", ["historical", "parametric", "monte_carlo"])
def test_every_var_method_is_available(method: str) -> None:
    limits = RiskLimits.model_validate({"var_method": method, "monte_carlo_simulations": 2_000})
    verdict = check_value_at_risk(_request(quantity=10_000), _var_portfolio(), limits)
    assert verdict.passed
    assert verdict.values["method"] == method
    assert float(verdict.values["cvar"]) >= float(verdict.values["var"]) > 0


def test_var_without_enough_history_is_not_measured() -> None:
    portfolio = PortfolioState(EQUITY)
    _with_history(portfolio, "EURUSD", np.full(5, 0.001))
    verdict = check_value_at_risk(_request(quantity=1e9), portfolio, RiskLimits())
    assert verdict.passed
    assert "not measured" in verdict.reason


# --- order rate: 10 per strategy per minute (market time)


@pytest.mark.parametrize(("earlier", "passed"), [(8, True), (9, True), (10, False)])
def test_order_rate_at_below_and_above_ten_per_minute(earlier: int, passed: bool) -> None:
    portfolio = PortfolioState(EQUITY)
    for second in range(earlier):
        portfolio.record_request("sma_cross", T0 + timedelta(seconds=second))
    request = _request(signal_time=T0 + timedelta(seconds=30))
    verdict = check_order_rate(request, portfolio, RiskLimits())
    assert verdict.passed is passed
    if not passed:
        assert verdict.values == {"orders_last_minute": 10, "limit": 10}


def test_order_rate_forgets_requests_older_than_a_minute_and_other_strategies() -> None:
    portfolio = PortfolioState(EQUITY)
    for second in range(10):
        portfolio.record_request("sma_cross", T0 + timedelta(seconds=second))
        portfolio.record_request("other", T0 + timedelta(seconds=61))
    request = _request(signal_time=T0 + timedelta(seconds=61))
    assert check_order_rate(request, portfolio, RiskLimits()).passed


# --- stale market data: no bar for 3 intervals refuses new exposure


def _bars_until_t0() -> PortfolioState:
    portfolio = PortfolioState(EQUITY)
    portfolio.market.on_bar(make_bar(-1, 1.5))  # closes at T0
    return portfolio


@pytest.mark.parametrize(
    ("silence", "passed"),
    [
        (timedelta(hours=2), True),
        (timedelta(hours=3), True),
        (timedelta(hours=3, seconds=1), False),
    ],
)
def test_a_symbol_silent_for_three_bars_while_the_market_moves_is_stale(
    silence: timedelta, passed: bool
) -> None:
    # Arrange: EURUSD's last bar closed at T0; GBPUSD's bars go on
    portfolio = _bars_until_t0()
    portfolio.market.on_bar(make_bar(-1, 1.2, symbol="GBPUSD", start=T0 + silence))
    # Act
    verdict = check_market_data(_request(signal_time=T0), portfolio, RiskLimits())
    # Assert
    assert verdict.passed is passed
    if not passed:
        assert verdict.rule == "stale_market_data"
        assert verdict.values["limit_seconds"] == 3 * Timeframe.H1.duration.total_seconds()
        assert verdict.values["silence_seconds"] == silence.total_seconds()


def test_an_order_behind_the_bars_risk_has_seen_is_not_judged_on_timing() -> None:
    # bars and orders travel on different queues: risk may be many bars ahead in a replay
    verdict = check_market_data(
        _request(signal_time=T0 - timedelta(hours=10)), _bars_until_t0(), RiskLimits()
    )
    assert verdict.passed


def test_an_order_ahead_of_the_bars_risk_has_seen_is_not_stale() -> None:
    # the order may overtake its bar on the way to risk: never a reason to refuse it
    verdict = check_market_data(
        _request(signal_time=T0 + timedelta(hours=5)), _bars_until_t0(), RiskLimits()
    )
    assert verdict.passed


def test_stale_market_data_still_admits_an_order_that_reduces_exposure() -> None:
    portfolio = _bars_until_t0()
    portfolio.projected_positions["EURUSD"] = 10_000
    request = _request(Side.SELL, 10_000, signal_time=T0 + timedelta(days=1))
    assert check_market_data(request, portfolio, RiskLimits()).passed


def test_a_symbol_without_any_bar_is_refused_when_market_data_is_required() -> None:
    required = check_market_data(_request(), PortfolioState(EQUITY), RiskLimits())
    relaxed = RiskLimits(require_market_data=False)
    optional = check_market_data(_request(), PortfolioState(EQUITY), relaxed)
    assert not required.passed
    assert optional.passed


# --- sizing: fractional Kelly (1/4), capped by the per-trade risk, stop distance -> units


@pytest.mark.parametrize(
    ("win_probability", "take_profit", "expected"),
    [
        (0.6, None, 8_000.0),  # Kelly/4 = 0.05 > 2 % cap -> 100,000 x 0.02 / 0.25
        (0.52, None, 4_000.0),  # Kelly/4 = 0.01 -> 100,000 x 0.01 / 0.25
        (0.4, 2.25, 8_000.0),  # payoff 3: Kelly 0.2 / 4 = 0.05 -> capped at 2 %
    ],
)
def test_kelly_sizing_gives_the_units_the_stop_allows(
    win_probability: float, take_profit: float | None, expected: float
) -> None:
    request = _request(
        quantity=50_000, stop_loss=1.25, take_profit=take_profit, win_probability=win_probability
    )
    sizing = size_order(request, PortfolioState(EQUITY), RiskLimits())
    assert sizing.verdict.passed
    assert sizing.quantity == pytest.approx(expected)


def test_kelly_never_enlarges_an_order() -> None:
    request = _request(quantity=1_000, stop_loss=1.25, win_probability=0.6)
    assert size_order(request, PortfolioState(EQUITY), RiskLimits()).quantity == 1_000


def test_an_order_without_edge_is_rejected_by_sizing() -> None:
    request = _request(quantity=1_000, stop_loss=1.25, win_probability=0.5)
    sizing = size_order(request, PortfolioState(EQUITY), RiskLimits())
    assert not sizing.verdict.passed
    assert sizing.verdict.rule == "sizing"


def test_sizing_keeps_the_closing_part_of_a_reversal() -> None:
    portfolio = PortfolioState(EQUITY, projected_positions={"EURUSD": 5_000})
    request = _request(Side.SELL, 50_000, stop_loss=1.75, win_probability=0.6)
    assert size_order(request, portfolio, RiskLimits()).quantity == pytest.approx(13_000)


def test_sizing_counts_the_position_already_held() -> None:
    portfolio = PortfolioState(EQUITY, projected_positions={"EURUSD": 5_000})
    request = _request(quantity=50_000, stop_loss=1.25, win_probability=0.6)
    assert size_order(request, portfolio, RiskLimits()).quantity == pytest.approx(3_000)


def test_orders_without_win_probability_are_not_sized() -> None:
    request = _request(quantity=50_000, stop_loss=1.25)
    sizing = size_order(request, PortfolioState(EQUITY), RiskLimits())
    assert sizing.quantity == 50_000
    assert sizing.verdict.passed


def test_engine_approves_the_sized_quantity_and_signs_it(
    signer: ApprovalSigner, verifier: ApprovalVerifier, clock: FakeClock
) -> None:
    # Arrange
    engine = RiskEngine(
        RiskLimits(max_position_notional_pct=100, require_market_data=False), signer, clock
    )
    request = _request(quantity=50_000, stop_loss=1.25, win_probability=0.6)
    # Act
    decision = engine.check(request, PortfolioState(EQUITY), TradingState.ACTIVE)
    # Assert
    assert decision.approval is not None
    assert decision.approval.quantity == pytest.approx(8_000)
    assert decision.approval.requested_quantity == 50_000
    assert verifier.verify(decision.approval).valid
    assert [verdict.rule for verdict in decision.verdicts][-1] == "value_at_risk"


def test_engine_cuts_an_order_to_the_risk_per_trade_limit_and_names_it(
    signer: ApprovalSigner, clock: FakeClock
) -> None:
    # Arrange: 9,000 units at 0.25 to the stop risk 2,250 > 2 % of 100,000
    engine = RiskEngine(
        RiskLimits(max_position_notional_pct=1000, require_market_data=False), signer, clock
    )
    # Act
    decision = engine.check(
        _request(quantity=9_000, stop_loss=1.25), PortfolioState(EQUITY), TradingState.ACTIVE
    )
    # Assert
    assert decision.approval is not None
    assert decision.approval.quantity == 8_000
    assert decision.approval.sized_by == "risk_per_trade"
    bound = next(v for v in decision.verdicts if v.rule == "risk_per_trade")
    assert bound.passed
    assert "cut from 9000 to 8000" in bound.reason
    assert bound.values["at_risk"] == pytest.approx(2_250)


def test_engine_rejects_when_not_one_unit_fits(signer: ApprovalSigner, clock: FakeClock) -> None:
    # Arrange: equity so small that one unit already risks more than 2 %
    engine = RiskEngine(
        RiskLimits(max_position_notional_pct=1000, require_market_data=False), signer, clock
    )
    # Act
    decision = engine.check(
        _request(quantity=9_000, stop_loss=1.25), PortfolioState(10.0), TradingState.ACTIVE
    )
    # Assert
    assert decision.rule == "risk_per_trade"
    assert decision.rejection is not None
    assert "exceed" in decision.rejection.reason
