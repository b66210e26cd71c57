"""The Strategies tab's table, from the shared strategy summaries."""

from __future__ import annotations

import pandas as pd
from gateway_support import T0

from tai_events.strategies import StrategyParametersUpdated
from tai_gateway.console.strategies import strategies_frame
from tai_gateway.strategy_view import strategy_summaries


def update(strategy: str, *, enabled: bool, **parameters: float) -> StrategyParametersUpdated:
    return StrategyParametersUpdated(
        strategy=strategy,
        enabled=enabled,
        parameters=parameters,
        updated_at=T0,
        updated_by="optimizer",
    )


def test_a_strategy_that_traded_and_one_that_only_reported_both_get_a_row() -> None:
    # Arrange
    pnl = pd.DataFrame(
        [
            {
                "strategy": "sma_cross",
                "requests": 4,
                "approved_full": 2,
                "approved_reduced": 1,
                "rejected": 1,
                "rejections_by_rule": {"max_position_notional": 1},
                "filled_orders": 3,
                "trades": 2,
                "winning_trades": 1,
                "net_pnl": 12.5,
            }
        ]
    )
    updates = [update("breakout", enabled=False, lookback=20.0)]
    # Act
    summaries = strategy_summaries(pnl, updates)
    frame = strategies_frame(summaries)
    # Assert
    assert [summary.strategy for summary in summaries] == ["breakout", "sma_cross"]
    assert frame.to_dict("records") == [
        {
            "strategy": "breakout",
            "enabled": "NO",
            "parameters": "lookback=20.0",
            "orders": 0,
            "approved": 0,
            "reduced": 0,
            "rejected": "0",
            "filled": 0,
            "closed trades": 0,
            "net P&L": 0.0,
            "win rate %": "",
        },
        {
            "strategy": "sma_cross",
            "enabled": "unknown",
            "parameters": "",
            "orders": 4,
            "approved": 2,
            "reduced": 1,
            "rejected": "max_position_notional 1",
            "filled": 3,
            "closed trades": 2,
            "net P&L": 12.5,
            "win rate %": 50.0,
        },
    ]


def test_the_latest_update_of_a_strategy_wins_and_without_trades_win_rate_is_unknown() -> None:
    # Arrange
    pnl = pd.DataFrame([{"strategy": "sma_cross", "requests": 1, "trades": 0, "net_pnl": 0.0}])
    updates = [update("sma_cross", enabled=False), update("sma_cross", enabled=True, fast=5.0)]
    # Act
    (summary,) = strategy_summaries(pnl, updates)
    # Assert
    assert summary.enabled is True
    assert summary.parameters == {"fast": 5.0}
    assert summary.win_rate_pct is None
