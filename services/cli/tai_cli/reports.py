"""Reports the CLI prints: what happened to each strategy's orders."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.table import Table


def _records(summary: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(key): value for key, value in row.items()} for row in summary.to_dict("records")]


def strategy_table(summary: pd.DataFrame) -> Table:
    """Return the per-strategy outcome of a run as a table (requests to P&L).

    Approvals are full (the strategy's own size: its request or its risk budget) or reduced
    (a risk limit cut the order to fit); rejections are listed by the rule that refused them.
    """
    table = Table(title="orders by strategy", box=None, pad_edge=False)
    for column in ("strategy", "requests", "full", "reduced", "rejected", "filled", "trades"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    table.add_column("won", justify="right")
    table.add_column("net P&L", justify="right", no_wrap=True)
    records = _records(summary)
    for row in records:
        table.add_row(
            str(row["strategy"]),
            str(row["requests"]),
            str(row["approved_full"]),
            str(row["approved_reduced"]),
            str(row["rejected"]),
            str(row["filled_orders"]),
            str(row["trades"]),
            str(row["winning_trades"]),
            f"{row['net_pnl']:,.2f}",
        )
    return table


def rejection_lines(summary: pd.DataFrame) -> list[str]:
    """Return one line per strategy with rejections: the count of each rule that refused."""
    records = _records(summary)
    return [
        f"{row['strategy']} rejected by "
        + ", ".join(f"{rule} {count}" for rule, count in row["rejections_by_rule"].items())
        for row in records
        if row["rejections_by_rule"]
    ]
