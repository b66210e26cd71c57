"""Performance metrics: hand-computed cases and cross-checks against empyrical."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import empyrical  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
import pytest

from tai_quant import metrics

T0 = datetime(2024, 1, 1)


def _curve(values: list[float], frequency: str = "D") -> pd.Series:
    return pd.Series(values, index=pd.date_range(T0, periods=len(values), freq=frequency))


def _random_curve(seed: int, size: int = 1_500) -> pd.Series:
    generator = np.random.default_rng(seed)
    returns = generator.normal(0.0004, 0.012, size)
    index = pd.bdate_range("2018-01-01", periods=size + 1)
    return pd.Series(10_000.0 * np.cumprod(np.concatenate(([1.0], 1.0 + returns))), index=index)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ratios_agree_with_empyrical_on_the_same_returns(seed: int) -> None:
    # Arrange
    equity = _random_curve(seed)
    returns = metrics.simple_returns(equity)
    periods = metrics.infer_periods_per_year(equity.index)

    # Act
    sharpe = metrics.sharpe_ratio(returns, periods)
    sortino = metrics.sortino_ratio(returns, periods)
    drawdown = metrics.drawdown_statistics(equity).max_drawdown_pct
    growth = metrics.cagr(equity, periods)
    volatility = metrics.annualised_volatility(returns, periods)
    calmar = metrics.calmar_ratio(equity, periods)

    # Assert
    assert periods == 252.0
    assert sharpe == pytest.approx(empyrical.sharpe_ratio(returns, annualization=252), rel=1e-9)
    assert sortino == pytest.approx(empyrical.sortino_ratio(returns, annualization=252), rel=1e-9)
    assert -drawdown / 100.0 == pytest.approx(empyrical.max_drawdown(returns), rel=1e-9)
    assert growth == pytest.approx(empyrical.cagr(returns, annualization=252), rel=1e-9)
    assert volatility == pytest.approx(
        empyrical.annual_volatility(returns, annualization=252), rel=1e-9
    )
    assert calmar == pytest.approx(empyrical.calmar_ratio(returns, annualization=252), rel=1e-9)


def test_sharpe_with_risk_free_rate_matches_empyrical_with_the_per_period_rate() -> None:
    equity = _random_curve(5)
    returns = metrics.simple_returns(equity)
    per_period = (1.03) ** (1 / 252) - 1

    sharpe = metrics.sharpe_ratio(returns, 252, risk_free_rate=0.03)

    assert sharpe == pytest.approx(
        empyrical.sharpe_ratio(returns, risk_free=per_period, annualization=252), rel=1e-9
    )


@pytest.mark.parametrize(
    ("frequency", "periods", "expected"),
    [
        ("h", 24 * 7 * 3, 24 * 365),  # around the clock, 7 days a week (crypto)
        ("B", 300, 252),
        ("D", 300, 365),
        ("W", 100, 52),
        ("ME", 60, 12),
        ("QE", 20, 4),
        ("YE", 10, 1),
    ],
)
def test_periods_per_year_follows_spacing_and_calendar(
    frequency: str, periods: int, expected: float
) -> None:
    index = pd.date_range("2021-01-04", periods=periods, freq=frequency)

    assert metrics.infer_periods_per_year(index) == pytest.approx(expected)


def test_hourly_fx_bars_give_24_times_260_periods(eurusd: pd.DataFrame) -> None:
    assert metrics.infer_periods_per_year(eurusd.index) == 24 * 260


def test_daily_equity_bars_give_252_periods(goog: pd.DataFrame) -> None:
    assert metrics.infer_periods_per_year(goog.index) == 252


def test_max_drawdown_depth_and_duration_are_measured_from_the_peak_to_recovery() -> None:
    # Arrange: peak 120 on day 1, trough 90 on day 3 (-25 %), back to 120 on day 5.
    equity = _curve([100, 120, 100, 90, 110, 120, 130, 117, 125])

    # Act
    statistics = metrics.drawdown_statistics(equity)

    # Assert
    assert statistics.max_drawdown_pct == pytest.approx(25.0)
    assert statistics.max_drawdown_duration_bars == 4
    assert statistics.max_drawdown_duration_days == pytest.approx(4.0)
    assert statistics.drawdown_count == 2
    assert statistics.average_drawdown_pct == pytest.approx((25.0 + 10.0) / 2)


def test_unrecovered_drawdown_lasts_until_the_last_bar() -> None:
    equity = _curve([100, 110, 80, 90, 95])

    statistics = metrics.drawdown_statistics(equity)

    assert statistics.max_drawdown_duration_bars == 3
    assert statistics.max_drawdown_pct == pytest.approx(100 * (1 - 80 / 110))


def test_rising_curve_has_no_drawdown_and_no_calmar() -> None:
    equity = _curve([100, 101, 102, 103])

    report = metrics.performance_report(equity, periods_per_year=252)

    assert report.max_drawdown_pct == 0.0
    assert report.calmar_ratio is None
    assert report.sortino_ratio is None


def _trade(day: int, hours: int, pnl: float, return_pct: float) -> metrics.Trade:
    entry = T0 + timedelta(days=day)
    return metrics.Trade(entry, entry + timedelta(hours=hours), pnl, return_pct)


def test_trade_statistics_count_wins_profit_factor_and_expectancy() -> None:
    trades = [_trade(0, 2, 300.0, 3.0), _trade(1, 2, -100.0, -1.0), _trade(2, 2, -50.0, -0.5)]

    statistics = metrics.trade_statistics(trades)

    assert statistics.number_of_trades == 3
    assert statistics.win_rate_pct == pytest.approx(100 / 3)
    assert statistics.profit_factor == pytest.approx(2.0)
    assert statistics.expectancy == pytest.approx(50.0)
    assert statistics.average_trade_pct == pytest.approx(0.5)
    assert statistics.best_trade_pct == 3.0
    assert statistics.worst_trade_pct == -1.0


def test_no_trades_leave_trade_statistics_undefined() -> None:
    statistics = metrics.trade_statistics([])

    assert statistics.number_of_trades == 0
    assert statistics.win_rate_pct is None
    assert statistics.profit_factor is None


def test_exposure_counts_overlapping_trades_once() -> None:
    start, end = T0, T0 + timedelta(hours=10)
    trades = [
        metrics.Trade(T0, T0 + timedelta(hours=2), 1.0, 0.1),
        metrics.Trade(T0 + timedelta(hours=1), T0 + timedelta(hours=3), 1.0, 0.1),
        metrics.Trade(T0 + timedelta(hours=8), T0 + timedelta(hours=12), 1.0, 0.1),
    ]

    assert metrics.exposure_pct(trades, start, end) == pytest.approx(50.0)


def test_trade_cannot_exit_before_entering() -> None:
    with pytest.raises(ValueError, match="exit"):
        metrics.Trade(T0, T0 - timedelta(hours=1), 1.0, 0.1)


def test_performance_report_collects_every_metric_and_serialises_to_json() -> None:
    # Arrange
    equity = _curve([100.0, 110.0, 99.0, 121.0], frequency="B")
    trades = [_trade(0, 24, 10.0, 10.0), _trade(1, 24, -11.0, -10.0), _trade(2, 24, 22.0, 22.2)]

    # Act
    report = metrics.performance_report(equity, trades)
    data = report.to_dict()

    # Assert
    assert report.periods_per_year == 252
    assert report.total_return_pct == pytest.approx(21.0)
    assert report.cagr_pct == pytest.approx((1.21 ** (252 / 3) - 1) * 100)
    assert report.max_drawdown_pct == pytest.approx(10.0)
    assert report.number_of_trades == 3
    assert report.profit_factor == pytest.approx(32.0 / 11.0)
    assert report.exposure_pct == pytest.approx(100.0)
    assert json.loads(json.dumps(data))["start"] == "2024-01-01T00:00:00"
    assert set(data) >= {"sharpe_ratio", "sortino_ratio", "calmar_ratio", "win_rate_pct"}
    with pytest.raises(AttributeError):
        report.sharpe_ratio = 0.0  # type: ignore[misc]


def test_equity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        metrics.total_return_pct(_curve([100.0, 0.0]))


def test_flat_curve_has_no_sharpe() -> None:
    returns = metrics.simple_returns(_curve([100.0, 100.0, 100.0]))

    assert metrics.sharpe_ratio(returns, 252) is None
    assert math.isclose(metrics.annualised_volatility(returns, 252), 0.0)
