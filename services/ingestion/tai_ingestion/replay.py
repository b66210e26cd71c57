"""File replay: read OHLCV bars from CSV or Parquet, validate them, report every bad row.

Files are read into columns by pandas (the C parser; pyarrow for Parquet) and validated as
columns: no Python runs per row unless a row is bad. Loaded bars stay columns until a caller
asks for bar events (``ReplayData.bars``); research wants a frame, which needs no events.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tai_events.base import SYMBOL_PATTERN
from tai_events.market import BarClosed, Timeframe
from tai_ingestion.models import RawBar
from tai_ingestion.validation import (
    RawColumns,
    RowIssue,
    ValidatedBars,
    ValidationReport,
    Validator,
    object_array,
    parse_times,
)

if TYPE_CHECKING:
    from tai_ingestion.bar_cache import ValidatedBarCache

REQUIRED_COLUMNS = ("Open", "High", "Low", "Close", "Volume")
TIMEFRAME_SAMPLE_ROWS = 500
"""Rows whose spacing tells a file's timeframe."""

RowRejection = RowIssue
"""A row that was not used, and why (kept under its first name for callers)."""


class ReplayData:
    """Valid bars in time order, and a report of every rejected row.

    Loaded from a file, the bars are held as columns (``columns``) and become ``BarClosed``
    events when ``bars`` is first read.
    """

    def __init__(
        self,
        bars: Sequence[BarClosed] | None = None,
        rejections: list[RowIssue] | None = None,
        report: ValidationReport | None = None,
        *,
        columns: ValidatedBars | None = None,
        symbol: str = "",
        source: str = "",
    ) -> None:
        self._bars = list(bars) if bars is not None else None
        self.rejections: list[RowIssue] = rejections if rejections is not None else []
        self.report = report if report is not None else ValidationReport()
        self.columns = columns
        self._symbol = symbol
        self._source = source

    @property
    def bars(self) -> list[BarClosed]:
        """Return the bars as events (built from the columns on first use)."""
        if self._bars is None:
            columns = self.columns
            self._bars = columns.to_bars(self._symbol, self._source) if columns else []
        return self._bars

    def frame(self) -> pd.DataFrame:
        """Return an OHLCV frame indexed by the bar opens (UTC)."""
        if self.columns is not None:
            return self.columns.frame()
        bars = self.bars
        return pd.DataFrame(
            {
                "Open": [bar.open for bar in bars],
                "High": [bar.high for bar in bars],
                "Low": [bar.low for bar in bars],
                "Close": [bar.close for bar in bars],
                "Volume": [bar.volume for bar in bars],
            },
            index=pd.DatetimeIndex([bar.opened_at for bar in bars]),
        )

    def rejected_by_rule(self) -> dict[str, int]:
        """Return how many rows each rule rejected."""
        return dict(Counter(str(rejection.rule) for rejection in self.rejections))


class ReplayFileError(ValueError):
    """The file cannot be replayed at all (missing, unreadable, wrong columns)."""


def symbol_from_file_name(path: Path) -> str:
    """Return the instrument a data file is named after (``eurusd.csv``: ``EURUSD``).

    A name that is no symbol (``eurusd.2024.csv``: symbols have no dots, they are routing-key
    segments) raises a ValueError that says to pass the symbol, and suggests one.
    """
    name = path.stem.upper()
    if SYMBOL_PATTERN.fullmatch(name):
        return name
    leading = re.match(r"[A-Z0-9][A-Z0-9_-]{0,31}", name)
    example = f", e.g. --symbol {leading.group()}" if leading else ""
    raise ValueError(
        f"the file name {path.name!r} names no instrument ({name!r} is not 1-32 upper-case "
        f"letters, digits, '_' or '-'): pass --symbol{example}"
    )


def read_columns(path: Path) -> RawColumns:
    """Read a CSV or Parquet file of bars into raw columns, untouched.

    CSV: a timestamp column first (usually unnamed), then Open, High, Low, Close, Volume in any
    letter case; prices that read as numbers come as numbers, every other cell as its text.
    Parquet: the same columns with the timestamps as the index or in a ``timestamp`` column.
    Row numbers are file lines for CSV (header = 1) and positions for Parquet.
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
            frame = _read_csv(path)
    except (OSError, ValueError, ImportError, pd.errors.ParserError) as error:
        raise ReplayFileError(f"cannot read {path}: {error}") from error
    frame = frame.rename(columns={column: str(column).capitalize() for column in frame.columns})
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ReplayFileError(f"{path} lacks columns {missing}; it has {list(frame.columns)}")
    first_row = 1 if parquet else 2
    values = [frame[column].to_numpy() for column in REQUIRED_COLUMNS]
    return RawColumns(
        np.arange(first_row, first_row + len(frame), dtype=np.int64),
        _times(frame.index),
        *(_raw_values(column) for column in values),
    )


def _read_csv(path: Path) -> pd.DataFrame:
    # The time column stays text (the validator parses it, and reports it as written); cells
    # are never taken for missing values, so an empty price is reported as such.
    frame = pd.read_csv(path, index_col=0, dtype={0: str}, na_filter=False)
    oddities = [
        column
        for column in frame.columns
        if str(column).capitalize() in REQUIRED_COLUMNS
        and frame[column].dtype.kind not in "fiuO"
        and not pd.api.types.is_string_dtype(frame[column].dtype)
    ]
    if oddities:  # e.g. a column of True/False: read as written, for the report
        text = pd.read_csv(path, usecols=oddities, dtype=str, na_filter=False)
        for column in oddities:
            frame[column] = text[column].to_numpy()
    return frame


def _times(index: pd.Index) -> pd.DatetimeIndex | np.ndarray:
    if isinstance(index, pd.DatetimeIndex):
        return index
    values = index.to_numpy(dtype=object)
    if len(values) == 0 or pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values
    return object_array(
        [
            value.to_pydatetime() if isinstance(value, pd.Timestamp) else str(value)
            for value in values.tolist()
        ]
    )


def _raw_values(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "fiuO":
        return values
    return values.astype(object)  # pandas text columns: Python strings


def read_rows(path: Path) -> list[RawBar]:
    """Read a CSV or Parquet file of bars into raw rows (see ``read_columns``)."""
    columns = read_columns(path)
    times = columns.times
    stamps: list[object] = (
        [
            "NaT" if pd.isna(value) else value.to_pydatetime()
            for value in times  # a parsed index: what a reader hands over is a datetime
        ]
        if isinstance(times, pd.DatetimeIndex)
        else times.tolist()
    )
    return [
        RawBar(row, stamp, open_, high, low, close, volume)
        for row, stamp, open_, high, low, close, volume in zip(
            columns.rows.tolist(),
            stamps,
            columns.open.tolist(),
            columns.high.tolist(),
            columns.low.tolist(),
            columns.close.tolist(),
            columns.volume.tolist(),
            strict=True,
        )
    ]


def infer_timeframe(raw: RawColumns, *, naive_zone: str = "UTC") -> Timeframe:
    """Return the timeframe whose duration is the median spacing of the first rows' times."""
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    sample = RawColumns(
        raw.rows[:TIMEFRAME_SAMPLE_ROWS],
        raw.times[:TIMEFRAME_SAMPLE_ROWS],
        raw.open[:TIMEFRAME_SAMPLE_ROWS],
        raw.high[:TIMEFRAME_SAMPLE_ROWS],
        raw.low[:TIMEFRAME_SAMPLE_ROWS],
        raw.close[:TIMEFRAME_SAMPLE_ROWS],
        raw.volume[:TIMEFRAME_SAMPLE_ROWS],
    )
    opened_at, parsed = parse_times(sample.times, ZoneInfo(naive_zone))
    times = opened_at[parsed]
    if len(times) < 2:
        raise ValueError("fewer than two rows with a readable time")
    spacing = pd.Timedelta(int(np.median(np.diff(times))), unit="us")
    for timeframe in Timeframe:
        if spacing == timeframe.duration:
            return timeframe
    if spacing >= Timeframe.D1.duration:
        return Timeframe.D1  # daily data skips weekends and holidays
    raise ValueError(f"cannot infer the timeframe (median spacing {spacing})")


def load_bars(
    path: Path,
    *,
    symbol: str,
    timeframe: Timeframe | None,
    source: str = "replay",
    start: datetime | None = None,
    validator: Validator | None = None,
    cache: ValidatedBarCache | None = None,
) -> ReplayData:
    """Read a CSV or Parquet file of bars from ``start`` on, validated by ``validator``.

    Naive timestamps are taken in the validator's ``naive_timezone`` (UTC by default). Rows
    with unparsable times, non-finite or non-positive prices, inconsistent OHLC, duplicate
    or non-increasing timestamps are rejected with a reason (default policies). Without a
    ``timeframe`` it is inferred from the spacing of the first rows. With a ``cache``, a file
    validated before under the same settings is not read again.
    """
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise ValueError(
            f"symbol {symbol!r} is not 1-32 upper-case letters, digits, '_' or '-' (e.g. EURUSD)"
        )
    validator = validator or Validator()
    key = cache.key(path, validator, timeframe, start) if cache is not None else None
    cached = cache.load(key) if cache is not None and key is not None else None
    if cached is not None:
        columns, report = cached
        validator.record(report)
    else:
        raw = read_columns(path)
        if timeframe is None:
            try:
                timeframe = infer_timeframe(raw, naive_zone=validator.config.naive_timezone)
            except ValueError as error:
                raise ReplayFileError(f"{path}: {error}") from error
        columns, report = validator.validate_columns(raw, timeframe=timeframe, start=start)
        if cache is not None and key is not None:
            cache.store(key, columns, report)
    return ReplayData(
        rejections=report.rejections, report=report, columns=columns, symbol=symbol, source=source
    )
