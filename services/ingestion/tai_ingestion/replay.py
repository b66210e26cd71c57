"""File replay: read OHLCV bars from CSV, report bad rows, and never use them silently."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from tai_events.market import BarClosed, Timeframe

REQUIRED_COLUMNS = ("Open", "High", "Low", "Close", "Volume")


@dataclass(frozen=True, slots=True)
class RowRejection:
    """A row that was not used, and why."""

    row: int
    timestamp: str
    rule: str
    reason: str


@dataclass
class ReplayData:
    """Valid bars in time order, and a report of every rejected row."""

    bars: list[BarClosed]
    rejections: list[RowRejection] = field(default_factory=list)

    def rejected_by_rule(self) -> dict[str, int]:
        """Return how many rows each rule rejected."""
        return dict(Counter(rejection.rule for rejection in self.rejections))


class ReplayFileError(ValueError):
    """The file cannot be replayed at all (missing, unreadable, wrong columns)."""


def load_bars(
    path: Path,
    *,
    symbol: str,
    timeframe: Timeframe,
    source: str = "replay",
    start: datetime | None = None,
) -> ReplayData:
    """Read a CSV (unnamed timestamp index, then Open, High, Low, Close, Volume) into bars.

    Naive timestamps are taken as UTC. Rows with unparsable times, non-finite or
    non-positive prices, inconsistent OHLC, duplicate or non-increasing timestamps are
    rejected with a reason.
    """
    if not path.is_file():
        raise ReplayFileError(f"replay file not found: {path}")
    try:
        frame = pd.read_csv(path, index_col=0, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ReplayFileError(f"cannot read {path}: {error}") from error
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ReplayFileError(f"{path} lacks columns {missing}; it has {list(frame.columns)}")
    data = ReplayData(bars=[])
    last_opened_at: datetime | None = None
    for row_number, (raw_time, row) in enumerate(frame.iterrows(), start=2):
        stamp = str(raw_time)
        opened_at = _parse_time(stamp)
        if opened_at is None:
            data.rejections.append(RowRejection(row_number, stamp, "timestamp", "unparsable time"))
            continue
        if start is not None and opened_at < start:
            continue
        values = _parse_numbers(row)
        if values is None:
            data.rejections.append(
                RowRejection(row_number, stamp, "non_finite", "a price or volume is not a finite number")
            )
            continue
        open_, high, low, close, volume = values
        if min(open_, high, low, close) <= 0 or volume < 0:
            data.rejections.append(
                RowRejection(row_number, stamp, "non_positive", "non-positive price or negative volume")
            )
            continue
        if last_opened_at is not None and opened_at <= last_opened_at:
            rule = "duplicate" if opened_at == last_opened_at else "non_monotonic"
            data.rejections.append(
                RowRejection(row_number, stamp, rule, f"time does not increase after {last_opened_at}")
            )
            continue
        try:
            bar = BarClosed(
                symbol=symbol,
                timeframe=timeframe,
                opened_at=opened_at,
                closed_at=opened_at + timeframe.duration,
                open=open_,
                high=high,
                low=low,
                close=close,
                volume=volume,
                source=source,
            )
        except ValidationError as error:
            data.rejections.append(
                RowRejection(row_number, stamp, "ohlc_inconsistent", error.errors()[0]["msg"])
            )
            continue
        data.bars.append(bar)
        last_opened_at = opened_at
    return data


def _parse_time(text: str) -> datetime | None:
    try:
        moment = pd.Timestamp(text)
    except (ValueError, TypeError):
        return None
    if moment is pd.NaT:
        return None
    moment = moment.tz_localize(UTC) if moment.tzinfo is None else moment.tz_convert(UTC)
    return moment.to_pydatetime()


def _parse_numbers(row: pd.Series) -> tuple[float, float, float, float, float] | None:
    try:
        values = tuple(float(row[column]) for column in REQUIRED_COLUMNS)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(value) for value in values):
        return None
    return values  # type: ignore[return-value]
