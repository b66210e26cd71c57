"""The Research tab's pure views: the runs table, the finished runs, a run's summary."""

from __future__ import annotations

from tai_gateway.backtests import BacktestRun, BacktestState
from tai_gateway.console.research import (
    SUMMARY_KEYS,
    finished_run_options,
    run_summary,
    runs_frame,
    trade_pnls,
)


def run(run_id: str, state: BacktestState, **summary: float) -> BacktestRun:
    return BacktestRun(
        run_id=run_id,
        state=state,
        request={"strategy": "sma_cross", "data_file": "EURUSD.csv"},
        requested_by="tom",
        started_at="2024-03-04T12:00:00.123456+00:00",
        error="x" * 500 if state is BacktestState.FAILED else None,
        summary=summary or None,
    )


def test_the_runs_table_shortens_ids_times_and_errors() -> None:
    # Act
    frame = runs_frame(
        [
            run("a" * 32, BacktestState.SUCCEEDED, return_pct=3.5, trades=7),
            run("b" * 32, BacktestState.FAILED),
        ]
    )
    # Assert
    first, second = frame.to_dict("records")
    assert first["run"] == "aaaaaaaa"
    assert first["started"] == "2024-03-04T12:00:00"
    assert first["return %"] == 3.5
    assert first["trades"] == 7
    assert len(second["error"]) == 120


def test_only_succeeded_runs_can_be_picked() -> None:
    runs = [run("a" * 32, BacktestState.SUCCEEDED), run("b" * 32, BacktestState.RUNNING)]
    assert finished_run_options(runs) == [
        {"label": "aaaaaaaa sma_cross (succeeded)", "value": "a" * 32}
    ]


def test_a_report_gives_its_headline_row_and_its_trade_pnls() -> None:
    # Arrange
    report = {"final_equity": 101.0, "sharpe": 1.2, "trade_list": [{"pnl": 1.5}, {"pnl": -2}, {}]}
    # Act
    summary = run_summary(report)
    # Assert
    assert list(summary.columns) == list(SUMMARY_KEYS)
    assert summary.iloc[0]["final_equity"] == 101.0
    assert summary.iloc[0]["trades"] is None
    assert trade_pnls(report) == [1.5, -2.0, 0.0]
