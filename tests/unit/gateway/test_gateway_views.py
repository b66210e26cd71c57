"""Pure console builders and risk read-outs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_events.risk import RiskLimitsPublished
from tai_gateway.console.controls import parse_parameters
from tai_gateway.console.views import FAN_PERCENTILES, monte_carlo_fan, positions_view
from tai_gateway.risk_view import LimitStatus, RiskLimits, circuit_breakers, risk_report
from tai_risk.breakers import describe_breakers
from tai_risk.config import RiskPolicy

T0 = datetime(2024, 3, 4, tzinfo=UTC)
LIMITS = RiskLimits(
    max_position_notional_pct=20.0,
    max_open_positions=2,
    max_drawdown_pct=10.0,
    max_daily_loss_pct=3.0,
    max_var_pct=2.0,
    var_confidence=0.95,
    cvar_confidence=0.975,
)
NO_POSITIONS = pd.DataFrame(columns=["symbol", "quantity", "last_price", "average_price"])


def curve(values: list[float], start: datetime = T0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "taken_at": [start + timedelta(hours=hour) for hour in range(len(values))],
            "equity": values,
        }
    )


def test_daily_loss_is_measured_from_the_last_equity_before_midnight() -> None:
    # Arrange: 100k at 23:00, 97k now (next day): a 3% loss uses the whole 3% limit
    equity = curve([100_000.0, 97_000.0], start=T0 - timedelta(hours=1))
    # Act
    report = risk_report(equity, NO_POSITIONS, LIMITS, T0 + timedelta(hours=1))
    # Assert
    assert report.daily_pnl == pytest.approx(-3_000.0)
    daily = next(limit for limit in report.limits if limit.name == "daily loss")
    assert daily.value == pytest.approx(3_000 / 97_000 * 100)
    assert daily.status is LimitStatus.BREACHED


def test_var_and_cvar_come_from_historical_returns_once_there_are_enough() -> None:
    rng = np.random.default_rng(3)
    values = list(100_000.0 * np.cumprod(1 + rng.normal(0, 0.01, 60)))
    report = risk_report(curve(values), NO_POSITIONS, LIMITS, T0 + timedelta(days=5))
    assert report.var is not None
    assert report.cvar is not None
    assert report.cvar >= report.var > 0


def test_no_equity_history_reports_no_risk_numbers() -> None:
    report = risk_report(curve([]), NO_POSITIONS, LIMITS, T0)
    assert (report.equity, report.var, report.drawdown_pct) == (None, None, 0.0)


def test_usage_warns_from_eighty_percent() -> None:
    report = risk_report(curve([100_000.0, 91_000.0]), NO_POSITIONS, LIMITS, T0)
    drawdown = next(limit for limit in report.limits if limit.name == "drawdown")
    assert drawdown.usage_pct == pytest.approx(90.0)
    assert drawdown.status is LimitStatus.WARNING


def test_positions_view_shows_unrealised_pnl_of_open_positions_only() -> None:
    positions = pd.DataFrame(
        {
            "symbol": ["EURUSD", "GBPUSD"],
            "quantity": [10_000.0, 0.0],
            "average_price": [1.10, 1.30],
            "last_price": [1.12, 1.31],
            "realized_pnl": [5.0, 40.0],
        }
    )
    view = positions_view(positions)
    assert list(view["symbol"]) == ["EURUSD"]
    assert view["unrealized_pnl"].iloc[0] == pytest.approx(200.0)


def test_parse_parameters_reads_numbers_and_names_a_bad_item() -> None:
    assert parse_parameters("fast=5, slow = 20.5") == {"fast": 5.0, "slow": 20.5}
    assert parse_parameters("") == {}
    with pytest.raises(ValueError, match="not name=number"):
        parse_parameters("fast")
    with pytest.raises(ValueError, match="not a number"):
        parse_parameters("fast=quick")


@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=40))
def test_fan_percentiles_are_ordered_and_start_at_the_initial_cash(pnls: list[float]) -> None:
    fan = monte_carlo_fan(pnls, 100_000.0, paths=200)
    assert len(fan) == len(pnls) + 1
    assert (fan.iloc[0][[f"p{level}" for level in FAN_PERCENTILES]] == 100_000.0).all()
    columns = [f"p{level}" for level in FAN_PERCENTILES]
    assert (np.diff(fan[columns].to_numpy(), axis=1) >= -1e-6).all()
    # the last step's median lies between the worst and best possible totals
    assert min(pnls) * len(pnls) - 1e-6 <= fan["p50"].iloc[-1] - 100_000.0
    assert fan["p50"].iloc[-1] - 100_000.0 <= max(pnls) * len(pnls) + 1e-6


def test_candles_mark_signals_orders_and_fills_at_their_bars() -> None:
    # Arrange
    from tai_events.orders import (  # noqa: PLC0415
        OrderState,
        OrderStatusChanged,
        SignalDirection,
        SignalGenerated,
    )
    from tai_gateway.console.views import candles_figure  # noqa: PLC0415

    bars = pd.DataFrame(
        {
            "opened_at": pd.to_datetime([T0 + timedelta(hours=hour) for hour in range(3)]),
            "open": [1.0, 1.1, 1.2],
            "high": [1.2, 1.3, 1.4],
            "low": [0.9, 1.0, 1.1],
            "close": [1.1, 1.2, 1.3],
        }
    )
    signal = SignalGenerated(
        strategy="sma_cross",
        symbol="EURUSD",
        direction=next(iter(SignalDirection)),
        confidence=1.0,
        reason="fast crossed slow",
        bar_closed_at=T0 + timedelta(hours=1, minutes=30),
    )
    order = OrderStatusChanged(
        order_id="o-1",
        symbol="EURUSD",
        state=OrderState.SUBMITTED,
        previous_state=OrderState.NEW,
        filled_quantity=0.0,
        remaining_quantity=1.0,
        changed_at=T0 + timedelta(hours=2),
    )
    fills = pd.DataFrame(
        {
            "filled_at": [T0 + timedelta(hours=2)],
            "symbol": ["EURUSD"],
            "side": ["BUY"],
            "price": [1.25],
        }
    )
    # Act
    figure = candles_figure(bars, "EURUSD", fills, [signal], [order])
    # Assert
    traces = {trace.name: trace for trace in figure.data}
    assert set(traces) == {"EURUSD", "buy fill", "signal", "order"}
    assert list(traces["signal"].y) == [1.2]  # the close of the bar opened at 10:00
    assert list(traces["order"].y) == [1.3]
    assert list(traces["buy fill"].y) == [1.25]


def test_printable_turns_json_cells_into_short_text() -> None:
    from tai_gateway.console.views import printable  # noqa: PLC0415

    frame = pd.DataFrame({"run": ["r1"], "summary": [{"sharpe": 1.2}], "folds": [[1, 2]]})
    shown = printable(frame, max_length=12)
    assert shown.loc[0, "summary"] == '{"sharpe": 1'
    assert shown.loc[0, "folds"] == "[1, 2]"
    assert shown.loc[0, "run"] == "r1"


def test_markers_outside_the_charted_bars_are_left_out() -> None:
    from tai_events.orders import OrderState, OrderStatusChanged  # noqa: PLC0415
    from tai_gateway.console.views import candles_figure  # noqa: PLC0415

    bars = pd.DataFrame(
        {
            "opened_at": pd.to_datetime([T0, T0 + timedelta(hours=1)]),
            "open": [1.0, 1.1],
            "high": [1.2, 1.3],
            "low": [0.9, 1.0],
            "close": [1.1, 1.2],
        }
    )
    # a replay's order carries today's wall-clock time, years after its historical bars
    late = OrderStatusChanged(
        order_id="o-late",
        symbol="EURUSD",
        state=OrderState.SUBMITTED,
        previous_state=OrderState.NEW,
        filled_quantity=0.0,
        remaining_quantity=1.0,
        changed_at=T0 + timedelta(days=3650),
    )
    no_fills = pd.DataFrame(columns=["filled_at", "symbol", "side", "price"])
    figure = candles_figure(bars, "EURUSD", no_fills, [], [late])
    assert [trace.name for trace in figure.data] == ["EURUSD"]


def _published(**settings: object) -> RiskLimitsPublished:
    """Return what a risk service with these settings announces (its own code builds it)."""
    policy = RiskPolicy(**settings)  # type: ignore[arg-type]
    return RiskLimitsPublished(
        limits=policy.limits().published(),
        breakers=describe_breakers(policy.breakers()),
        published_at=T0,
    )


def test_the_breaker_table_is_the_one_risk_announced() -> None:
    # Arrange: risk configured off its defaults
    published = _published(daily_loss_halt_pct=4.5, drawdown_halt_pct=12.0, cvar_confidence=0.99)
    limits = RiskLimits.from_published(published)
    # Act
    report = risk_report(curve([100_000.0, 97_000.0]), NO_POSITIONS, limits, T0)
    rows = {(row["breaker"], row["moves to"]): row for row in circuit_breakers(report, limits)}
    # Assert: risk halts on the daily loss until the next session (not REDUCING)
    daily = rows[("daily_loss", "HALTED")]
    assert (daily["threshold"], daily["lifted by"]) == ("4.5", "next session")
    assert rows[("drawdown", "HALTED")]["threshold"] == "12"
    assert rows[("drawdown", "REDUCING")]["lifted by"] == "admin resume"
    assert len(rows) == len(published.breakers)
    assert (limits.max_daily_loss_pct, limits.max_drawdown_pct) == (4.5, 12.0)
    assert report.cvar_confidence == 0.99
    assert report.var_confidence == 0.95
