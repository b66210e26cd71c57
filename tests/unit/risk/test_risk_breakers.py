"""Circuit breakers at, below and above their thresholds; the trading state machine."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tai_events import TradingState
from tai_risk.breakers import BreakerSettings, CircuitBreakers
from tai_risk.state import TradingStateMachine
from tests.factories import T0


def _breakers(equity: float = 100_000.0) -> CircuitBreakers:
    breakers = CircuitBreakers(BreakerSettings(), peak_equity=equity)
    breakers.roll_session(T0, equity)
    return breakers


@pytest.mark.parametrize(
    ("equity", "expected"),
    [
        (93_001.0, []),
        (93_000.0, [("drawdown", TradingState.REDUCING)]),
        (90_001.0, [("drawdown", TradingState.REDUCING)]),
        (90_000.0, [("drawdown", TradingState.HALTED)]),
    ],
)
def test_drawdown_reduces_at_seven_and_halts_at_ten_percent(
    equity: float, expected: list[tuple[str, TradingState]]
) -> None:
    breakers = _breakers()
    breakers.roll_session(T0 + timedelta(days=1), equity)  # keep the daily loss out of it
    trips = breakers.on_equity(equity)
    assert [(trip.breaker, trip.target) for trip in trips] == expected


def test_drawdown_is_measured_from_the_peak() -> None:
    breakers = _breakers()
    breakers.on_equity(120_000.0)
    breakers.roll_session(T0 + timedelta(days=1), 111_000.0)
    assert breakers.drawdown_pct(111_000.0) == pytest.approx(7.5)
    assert [trip.target for trip in breakers.on_equity(111_000.0)] == [TradingState.REDUCING]


@pytest.mark.parametrize(("equity", "halted"), [(97_001.0, False), (97_000.0, True)])
def test_daily_loss_of_three_percent_halts_until_the_next_session(
    equity: float, halted: bool
) -> None:
    breakers = _breakers()
    trips = [trip for trip in breakers.on_equity(equity) if trip.breaker == "daily_loss"]
    assert bool(trips) is halted
    if halted:
        assert trips[0].target is TradingState.HALTED
        assert trips[0].until_next_session
    assert breakers.daily_pnl(equity) == pytest.approx(equity - 100_000.0)


def test_a_new_session_resets_the_daily_baseline() -> None:
    breakers = _breakers()
    assert not breakers.roll_session(T0 + timedelta(hours=5), 96_000.0)
    assert breakers.roll_session(T0 + timedelta(days=1), 96_000.0)
    assert breakers.daily_pnl(96_000.0) == 0.0
    assert not [t for t in breakers.on_equity(95_000.0) if t.breaker == "daily_loss"]


def test_sessions_start_at_the_configured_hour() -> None:
    breakers = CircuitBreakers(BreakerSettings(session_start_hour_utc=22), peak_equity=1.0)
    assert breakers.session_of(T0) == (T0 - timedelta(days=1)).replace(hour=22)
    assert breakers.session_of(T0.replace(hour=23)) == T0.replace(hour=22)


@pytest.mark.parametrize(("losses", "tripped"), [(4, False), (5, True), (6, True)])
def test_consecutive_losses_reduce_at_five(losses: int, tripped: bool) -> None:
    breakers = _breakers()
    trips = []
    for _ in range(losses):
        trips = breakers.on_trade_closed(-10.0, T0)
    assert bool(trips) is tripped
    if tripped:
        assert trips[0].target is TradingState.REDUCING
        assert trips[0].until_next_session


def test_a_winning_trade_or_a_new_session_resets_the_losing_streak() -> None:
    breakers = _breakers()
    for _ in range(4):
        breakers.on_trade_closed(-10.0, T0)
    breakers.on_trade_closed(5.0, T0)
    for _ in range(4):
        breakers.on_trade_closed(-10.0, T0)
    assert breakers.on_trade_closed(-10.0, T0 + timedelta(days=1)) == []
    assert breakers.consecutive_losses == 1


def test_the_losing_streak_follows_the_trades_sessions_not_the_bars() -> None:
    # Arrange: the bar stream already rolled two sessions ahead of the fills
    breakers = _breakers()
    breakers.roll_session(T0 + timedelta(days=2), 100_000.0)
    # Act: three losses on day one, three on day two
    trips = [breakers.on_trade_closed(-10.0, T0 + timedelta(hours=h)) for h in (1, 2, 3)]
    trips += [breakers.on_trade_closed(-10.0, T0 + timedelta(days=1, hours=h)) for h in (1, 2, 3)]
    # Assert
    assert not any(trips)
    assert breakers.consecutive_losses == 3


@pytest.mark.parametrize(("atr", "tripped"), [(2.9, False), (3.0, False), (3.01, True)])
def test_volatility_spike_above_three_times_the_mean_atr(atr: float, tripped: bool) -> None:
    trips = _breakers().on_volatility("EURUSD", atr, 1.0)
    assert bool(trips) is tripped
    if tripped:
        assert trips[0].breaker == "volatility_spike"


def test_volatility_is_not_judged_before_the_mean_exists() -> None:
    assert _breakers().on_volatility("EURUSD", 10.0, None) == []


@pytest.mark.parametrize(("errors", "tripped"), [(4, False), (5, True)])
def test_error_burst_of_five_within_a_minute_reduces(errors: int, tripped: bool) -> None:
    breakers = _breakers()
    trips = []
    for second in range(errors):
        trips = breakers.on_error(T0 + timedelta(seconds=second * 10), "broker rejected")
    assert bool(trips) is tripped


def test_errors_spread_over_more_than_the_window_do_not_trip() -> None:
    breakers = _breakers()
    trips = []
    for index in range(10):
        trips = breakers.on_error(T0 + timedelta(seconds=index * 15), "broker rejected")
    assert trips == []


def test_failed_reconciliation_reduces() -> None:
    trips = _breakers().on_reconciliation_failed("position mismatch")
    assert [(trip.breaker, trip.target) for trip in trips] == [
        ("reconciliation", TradingState.REDUCING)
    ]


def test_rebase_accepts_the_losses_after_an_admin_resume() -> None:
    breakers = _breakers()
    breakers.on_equity(89_000.0)
    breakers.rebase(89_000.0)
    assert breakers.on_equity(89_000.0) == []


def test_breakers_only_escalate_the_trading_state() -> None:
    machine = TradingStateMachine()
    assert machine.escalate(TradingState.HALTED, "daily loss") is TradingState.ACTIVE
    assert machine.escalate(TradingState.REDUCING, "losses") is None
    assert machine.state is TradingState.HALTED


def test_an_admin_breaker_pins_a_state_the_next_session_would_lift() -> None:
    machine = TradingStateMachine()
    machine.escalate(TradingState.REDUCING, "losses", until_next_session=True)
    machine.escalate(TradingState.REDUCING, "drawdown")
    assert machine.until_next_session is False
    assert machine.reason == "drawdown"
