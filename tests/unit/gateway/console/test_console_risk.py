"""The Risk tab's pure views: KPI cards, limits, rejections merged from bus and ledger."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from tai_events.orders import OrderRejected, Side
from tai_gateway.console.risk import (
    REJECTION_ROWS,
    limits_frame,
    money,
    rejections_frame,
    risk_cards,
    state_history_frame,
)
from tai_gateway.risk_view import LimitStatus, LimitUsage, RiskReport

T0 = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)


def report(**overrides: object) -> RiskReport:
    values: dict[str, object] = {
        "equity": 99_000.0,
        "peak_equity": 100_000.0,
        "drawdown_pct": 1.0,
        "daily_pnl": -250.5,
        "var": 812.345,
        "cvar": None,
        "var_confidence": 0.975,
        "cvar_confidence": 0.99,
        "limits": (LimitUsage("drawdown", 1.0, 10.0, "%", 10.0, LimitStatus.OK),),
    }
    values.update(overrides)
    return RiskReport(**values)  # type: ignore[arg-type]


def rejection(order_id: str, at: datetime = T0, rule: str = "max_open_positions") -> OrderRejected:
    return OrderRejected(
        order_id=order_id,
        strategy="sma_cross",
        symbol="EURUSD",
        side=Side.BUY,
        quantity=1000.0,
        rule=rule,
        reason="too many positions",
        decided_at=at,
    )


def test_cards_name_the_confidence_and_say_when_history_is_too_short() -> None:
    # Act
    cards = {key: (title, value) for key, title, value in risk_cards("HALTED", report())}
    # Assert
    assert cards["risk-state"] == ("Trading state", "HALTED")
    assert cards["risk-var"] == ("VaR 97.5%", "812.35")
    assert cards["risk-cvar"] == ("CVaR 99%", "n/a (too little history)")
    assert cards["risk-daily"][1] == "-250.50"


def test_money_never_shows_a_negative_zero() -> None:
    assert money(-0.001) == "0.00"
    assert money(None) == "n/a (too little history)"


def test_limits_show_value_limit_usage_and_status_per_limit() -> None:
    # Act
    frame = limits_frame(report())
    # Assert
    assert frame.to_dict("records") == [
        {
            "limit": "drawdown",
            "value": "1.00 %",
            "limit value": "10.00 %",
            "usage": "10.0%",
            "status": "OK",
        }
    ]


def test_a_rejection_seen_on_the_bus_and_stored_is_shown_once() -> None:
    # Arrange
    stored = pd.DataFrame(
        [
            {
                "updated_at": T0,
                "order_id": "o-1",
                "strategy": "sma_cross",
                "symbol": "EURUSD",
                "rule": "max_open_positions",
                "reason": "stored copy",
                "extra": "not shown",
            },
            {
                "updated_at": T0,
                "order_id": "o-2",
                "strategy": "sma_cross",
                "symbol": "EURUSD",
                "rule": "daily_loss",
                "reason": "only stored",
                "extra": "not shown",
            },
        ]
    )
    # Act
    frame = rejections_frame([rejection("o-1")], stored)
    # Assert
    assert list(frame["order_id"]) == ["o-1", "o-2"]
    assert frame.iloc[0]["reason"] == "too many positions"  # the bus copy wins
    assert "extra" not in frame.columns


def test_rejections_are_capped_and_empty_inputs_give_an_empty_table() -> None:
    # Arrange
    many = [rejection(f"o-{number}") for number in range(REJECTION_ROWS + 5)]
    # Act
    capped = rejections_frame(many, pd.DataFrame())
    empty = rejections_frame([], pd.DataFrame())
    # Assert
    assert len(capped) == REJECTION_ROWS
    assert empty.empty
    assert "order_id" in empty.columns


def test_state_history_keeps_only_the_shown_columns() -> None:
    # Arrange
    history = pd.DataFrame(
        [{"changed_at": T0, "state": "HALTED", "reason": "kill", "changed_by": "alice", "id": 7}]
    )
    # Act
    frame = state_history_frame(history)
    # Assert
    assert list(frame.columns) == ["changed_at", "state", "reason", "changed_by"]
