"""The Live tab's pure views: fills merged from bus and ledger, the symbol shown, freshness."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from gateway_support import T0, make_fill

from tai_gateway.console.live import FILL_COLUMNS, fill_rows, is_fresh, symbol_shown
from tai_gateway.console.views import fills_frame


def test_a_fill_seen_on_the_bus_and_stored_is_listed_once_newest_first() -> None:
    # Arrange
    seen = fills_frame([make_fill(2), make_fill(3)])
    stored = fills_frame([make_fill(1), make_fill(2)])
    # Act
    rows = fill_rows(stored, seen)
    # Assert
    assert len(rows) == 3
    assert list(rows["side"]) == ["BUY", "SELL", "BUY"]  # 3, 2, 1: newest first
    assert list(rows.columns) == [column for column in FILL_COLUMNS if column != "commission"]


def test_no_fills_give_an_empty_table_with_the_fill_columns() -> None:
    rows = fill_rows(pd.DataFrame(), pd.DataFrame())
    assert rows.empty
    assert list(rows.columns) == FILL_COLUMNS


def test_the_chosen_symbol_is_kept_while_it_has_bars_else_the_first_is_shown() -> None:
    assert symbol_shown(["EURUSD", "GBPUSD"], "GBPUSD") == "GBPUSD"
    assert symbol_shown(["EURUSD", "GBPUSD"], "USDJPY") == "EURUSD"
    assert symbol_shown(["EURUSD"], None) == "EURUSD"
    assert symbol_shown([], "EURUSD") == ""


def test_the_page_is_fresh_only_for_the_same_version_read_lately() -> None:
    seen = {"version": 7, "at": T0.isoformat()}
    assert is_fresh(seen, 7, T0 + timedelta(seconds=5))
    assert not is_fresh(seen, 8, T0 + timedelta(seconds=5))  # something new arrived
    assert not is_fresh(seen, 7, T0 + timedelta(seconds=30))  # re-read the ledger
    assert not is_fresh(None, 7, T0)
