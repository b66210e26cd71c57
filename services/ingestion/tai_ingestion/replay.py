"""File replay: read OHLCV bars from CSV or Parquet, validate them, report every bad row."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from tai_events.market import BarClosed, Timeframe
from tai_ingestion.models import RawBar
from tai_ingestion.validation import RowIssue, ValidationReport, Validator

REQUIRED_COLUMNS = ("Open", "High", "Low", "Close", "Volume")

RowRejection = RowIssue
"""A row that was not used, and why (kept under its first name for callers)."""


@dataclass
class ReplayData:
    """Valid bars in time order, and a report of every rejected row."""

    bars: list[BarClosed]
    rejections: list[RowIssue] = field(default_factory=list)
    report: ValidationReport = field(default_factory=ValidationReport)

    def rejected_by_rule(self) -> dict[str, int]:
        """Return how many rows each rule rejected."""
        return dict(Counter(str(rejection.rule) for rejection in self.rejections))


class ReplayFileError(ValueError):
    """The file cannot be replayed at all (missing, unreadable, wrong columns)."""


def read_rows(path: Path) -> list[RawBar]:
    """Read a CSV or Parquet file of bars into raw rows, untouched.

    CSV: an unnamed timestamp index column, then Open, High, Low, Close, Volume. Parquet:
    the same columns with the timestamps as the index or in a ``timestamp`` column. Row
    numbers are file lines for CSV (header = 1) and positions for Parquet.
    """
    if not path.is_file():
        raise ReplayFileError(f"replay file not found: {path}")
    parquet = path.suffix.lower() in {".parquet", ".pq"}
    try:
        if parquet:
            frame = pd.read_parquet(path)
            if "timestamp" in frame.columns:
                frame = frame.set_index("timestamp")
        else:
            frame = pd.read_csv(path, index_col=0, dtype=str, keep_default_na=False)
    except (OSError, ValueError, ImportError, pd.errors.ParserError) as error:
        raise ReplayFileError(f"cannot read {path}: {error}") from error
    frame = frame.rename(columns={column: str(column).capitalize() for column in frame.columns})
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ReplayFileError(f"{path} lacks columns {missing}; it has {list(frame.columns)}")
    first_row = 1 if parquet else 2
    rows: list[RawBar] = []
    for number, (stamp, open_, high, low, close, volume) in enumerate(
        zip(frame.index, *(frame[column] for column in REQUIRED_COLUMNS), strict=True),
        start=first_row,
    ):
        timestamp = stamp.to_pydatetime() if isinstance(stamp, pd.Timestamp) else str(stamp)
        rows.append(RawBar(number, timestamp, open_, high, low, close, volume))
    return rows


def load_bars(
    path: Path,
    *,
    symbol: str,
    timeframe: Timeframe,
    source: str = "replay",
    start: datetime | None = None,
    validator: Validator | None = None,
) -> ReplayData:
    """Read a CSV or Parquet file of bars from ``start`` on, validated by ``validator``.

    Naive timestamps are taken in the validator's ``naive_timezone`` (UTC by default). Rows
    with unparsable times, non-finite or non-positive prices, inconsistent OHLC, duplicate
    or non-increasing timestamps are rejected with a reason (default policies).
    """
    rows = read_rows(path)
    result = (validator or Validator()).validate(
        rows, symbol=symbol, timeframe=timeframe, source=source, start=start
    )
    return ReplayData(bars=result.bars, rejections=result.report.rejections, report=result.report)
