"""The row-wise validation and file reading as they were before vectorisation: the oracle.

Kept only here, verbatim but for names, so the vectorised ``tai_ingestion.validation`` can be
compared finding by finding (tests/unit/ingestion/test_ingestion_validation_equivalence.py).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from tai_events.market import BarClosed, Timeframe
from tai_ingestion.calendar import TradingCalendar
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.models import RawBar
from tai_ingestion.validation import (
    Policy,
    RowIssue,
    Rule,
    ValidationConfig,
    ValidationReport,
    ValidationResult,
)

_UTC_ZONE = ZoneInfo("UTC")
REQUIRED_COLUMNS = ("Open", "High", "Low", "Close", "Volume")


@dataclass(slots=True)
class _Candidate:
    row: int
    stamp: str
    opened_at: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


class RowWiseValidator:
    """The row-wise validator as it was before vectorisation (the reference)."""

    def __init__(
        self,
        config: ValidationConfig | None = None,
        *,
        calendar: TradingCalendar | None = None,
        metrics: IngestionMetrics | None = None,
    ) -> None:
        self.config = config or ValidationConfig()
        self._calendar = calendar
        self._metrics = metrics
        self._naive_zone = ZoneInfo(self.config.naive_timezone)

    def validate(
        self,
        rows: Iterable[RawBar],
        *,
        symbol: str,
        timeframe: Timeframe,
        source: str,
        previous: BarClosed | None = None,
        start: datetime | None = None,
    ) -> ValidationResult:
        """Validate ``rows`` (after ``previous``, the last bar already accepted; from ``start``)."""
        report = ValidationReport()
        candidates = self._check_rows(rows, timeframe, start, report)
        candidates = self._order(candidates, previous, report)
        candidates = self._outliers(candidates, previous, report)
        bars = [self._bar(candidate, symbol, timeframe, source) for candidate in candidates]
        if self.config.check_gaps and self._calendar is not None and bars:
            present = {bar.opened_at for bar in bars}
            begin = bars[0].opened_at if previous is None else previous.closed_at
            report.gaps = row_wise_missing_bar_opens(
                self._calendar, timeframe, begin, bars[-1].closed_at, present
            )
        report.accepted = len(bars)
        self._record(report)
        return ValidationResult(bars=bars, report=report)

    def _check_rows(
        self,
        rows: Iterable[RawBar],
        timeframe: Timeframe,
        start: datetime | None,
        report: ValidationReport,
    ) -> list[_Candidate]:
        candidates: list[_Candidate] = []
        for raw in rows:
            stamp = raw.timestamp if isinstance(raw.timestamp, str) else raw.timestamp.isoformat()
            opened_at = self._parse_time(raw.timestamp)
            if opened_at is None:
                report.issues.append(RowIssue(raw.row, stamp, Rule.TIMESTAMP, "unparsable time"))
                continue
            if start is not None and opened_at < start:
                continue
            numbers = _parse_numbers(raw)
            if isinstance(numbers, RowIssue):
                report.issues.append(RowIssue(raw.row, stamp, numbers.rule, numbers.reason))
                continue
            open_, high, low, close, volume = numbers
            if min(open_, high, low, close) <= 0 or volume < 0:
                report.issues.append(
                    RowIssue(
                        raw.row, stamp, Rule.NON_POSITIVE, "non-positive price or negative volume"
                    )
                )
                continue
            candidate = _Candidate(raw.row, stamp, opened_at, open_, high, low, close, volume)
            if not self._consistent_or_repaired(candidate, report):
                continue
            if not self._aligned_or_handled(candidate, timeframe, report):
                continue
            candidates.append(candidate)
        return candidates

    def _consistent_or_repaired(self, candidate: _Candidate, report: ValidationReport) -> bool:
        c = candidate
        if c.low <= min(c.open, c.close) and c.high >= max(c.open, c.close):
            return True
        reason = f"inconsistent OHLC: low={c.low} open={c.open} close={c.close} high={c.high}"
        policy = self.config.policy(Rule.OHLC_INCONSISTENT)
        report.issues.append(RowIssue(c.row, c.stamp, Rule.OHLC_INCONSISTENT, reason, policy))
        if policy is Policy.REPAIR:
            c.high = max(c.open, c.high, c.low, c.close)
            c.low = min(c.open, c.high, c.low, c.close)
            return True
        return False

    def _aligned_or_handled(
        self, candidate: _Candidate, timeframe: Timeframe, report: ValidationReport
    ) -> bool:
        aligned = row_wise_align(candidate.opened_at, timeframe)
        if aligned == candidate.opened_at:
            return True
        policy = self.config.policy(Rule.MISALIGNED)
        reason = f"open is not on the {timeframe.value} UTC grid (nearest open {aligned})"
        report.issues.append(
            RowIssue(candidate.row, candidate.stamp, Rule.MISALIGNED, reason, policy)
        )
        if policy is Policy.REPAIR:
            candidate.opened_at = aligned
        return policy is not Policy.REJECT

    def _order(
        self,
        candidates: list[_Candidate],
        previous: BarClosed | None,
        report: ValidationReport,
    ) -> list[_Candidate]:
        if self.config.policy(Rule.NON_MONOTONIC) is Policy.REPAIR:
            ordered = sorted(candidates, key=lambda candidate: candidate.opened_at)
            for before, after in zip(candidates, ordered, strict=True):
                if before is not after:
                    report.issues.append(
                        RowIssue(
                            before.row,
                            before.stamp,
                            Rule.NON_MONOTONIC,
                            "out of time order; sorted",
                            Policy.REPAIR,
                        )
                    )
            candidates = ordered
        duplicate_policy = self.config.policy(Rule.DUPLICATE)
        kept: list[_Candidate] = []
        last_time = previous.opened_at if previous is not None else None
        for candidate in candidates:
            if last_time is not None and candidate.opened_at == last_time:
                if duplicate_policy is Policy.REPAIR and kept:
                    report.issues.append(
                        RowIssue(
                            kept[-1].row,
                            kept[-1].stamp,
                            Rule.DUPLICATE,
                            f"replaced by row {candidate.row}",
                            Policy.REPAIR,
                        )
                    )
                    kept[-1] = candidate
                else:
                    report.issues.append(
                        RowIssue(
                            candidate.row,
                            candidate.stamp,
                            Rule.DUPLICATE,
                            f"time {candidate.opened_at} already seen",
                        )
                    )
                continue
            if last_time is not None and candidate.opened_at < last_time:
                report.issues.append(
                    RowIssue(
                        candidate.row,
                        candidate.stamp,
                        Rule.NON_MONOTONIC,
                        f"time does not increase after {last_time}",
                    )
                )
                continue
            kept.append(candidate)
            last_time = candidate.opened_at
        return kept

    def _outliers(
        self,
        candidates: list[_Candidate],
        previous: BarClosed | None,
        report: ValidationReport,
    ) -> list[_Candidate]:
        max_return = self.config.outlier_max_return
        max_z = self.config.outlier_max_z_score
        if max_return is None and max_z is None:
            return candidates
        policy = self.config.policy(Rule.OUTLIER)
        kept: list[_Candidate] = []
        last_close = previous.close if previous is not None else None
        window: list[float] = []
        for candidate in candidates:
            if last_close is None:
                kept.append(candidate)
                last_close = candidate.close
                continue
            change = candidate.close / last_close - 1.0
            reason = _outlier_reason(change, window, max_return, max_z, self.config.outlier_window)
            if reason is not None:
                report.issues.append(
                    RowIssue(candidate.row, candidate.stamp, Rule.OUTLIER, reason, policy)
                )
                if policy is Policy.REJECT:
                    continue
            else:
                window.append(math.log1p(change))
                del window[: -self.config.outlier_window]
            kept.append(candidate)
            last_close = candidate.close
        return kept

    def _bar(
        self, candidate: _Candidate, symbol: str, timeframe: Timeframe, source: str
    ) -> BarClosed:
        return BarClosed(
            symbol=symbol,
            timeframe=timeframe,
            opened_at=candidate.opened_at,
            closed_at=candidate.opened_at + timeframe.duration,
            open=candidate.open,
            high=candidate.high,
            low=candidate.low,
            close=candidate.close,
            volume=candidate.volume,
            source=source,
        )

    def _parse_time(self, value: datetime | str) -> datetime | None:
        return row_wise_parse_timestamp(value, self._naive_zone)

    def _record(self, report: ValidationReport) -> None:
        if self._metrics is None:
            return
        for rule, count in report.rejected_by_rule().items():
            self._metrics.rows_rejected.labels(rule=rule).inc(count)
        for rule, count in report.repaired_by_rule().items():
            self._metrics.rows_repaired.labels(rule=rule).inc(count)
        for rule, count in report.flagged_by_rule().items():
            self._metrics.rows_flagged.labels(rule=rule).inc(count)


def row_wise_parse_timestamp(
    value: datetime | str, naive_zone: ZoneInfo = _UTC_ZONE
) -> datetime | None:
    """Return ``value`` as aware UTC (naive: in ``naive_zone``); None when it does not parse."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            parsed = pd.Timestamp(value)
        except (ValueError, TypeError, OverflowError):
            return None
        if bool(pd.isna(parsed)):  # pandas parses "" and "NaT" to NaT, not an error
            return None
        moment = parsed.to_pydatetime()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=naive_zone)
    return moment.astimezone(UTC)


def _parse_numbers(raw: RawBar) -> tuple[float, float, float, float, float] | RowIssue:
    values: list[float] = []
    for name in ("open", "high", "low", "close", "volume"):
        value = getattr(raw, name)
        if isinstance(value, bool) or value is None:
            return RowIssue(raw.row, "", Rule.SCHEMA, f"{name} is missing or not a number")
        try:
            number = float(str(value)) if not isinstance(value, int | float) else float(value)
        except (TypeError, ValueError):
            return RowIssue(raw.row, "", Rule.SCHEMA, f"{name} is not a number: {value!r}")
        if not math.isfinite(number):
            return RowIssue(
                raw.row, "", Rule.NON_FINITE, "a price or volume is not a finite number"
            )
        values.append(number)
    return values[0], values[1], values[2], values[3], values[4]


def _outlier_reason(
    change: float,
    window: Sequence[float],
    max_return: float | None,
    max_z: float | None,
    window_size: int,
) -> str | None:
    if max_return is not None and abs(change) > max_return:
        return f"return {change:.4%} exceeds {max_return:.4%}"
    if max_z is not None and len(window) >= min(window_size, 20):
        spread = statistics.pstdev(window)
        if spread > 0:
            score = (math.log1p(change) - statistics.fmean(window)) / spread
            if abs(score) > max_z:
                return f"return z-score {score:.1f} exceeds {max_z}"
    return None


def row_wise_missing_bar_opens(
    calendar: TradingCalendar,
    timeframe: Timeframe,
    start: datetime,
    end: datetime,
    present: set[datetime],
) -> list[datetime]:
    """Return the aligned bar opens in [start, end) the calendar expects but ``present`` lacks."""
    missing: list[datetime] = []
    moment = row_wise_align(start, timeframe)
    if moment < start:
        moment += timeframe.duration
    while moment < end:
        if moment not in present and calendar.bar_expected(moment, timeframe):
            missing.append(moment)
        moment += timeframe.duration
    return missing


def row_wise_align(moment: datetime, timeframe: Timeframe) -> datetime:
    """Return the open of the UTC-aligned bar of ``timeframe`` containing ``moment``.

    Bars are aligned to the Unix epoch in UTC: 4h bars open at 00, 04, ... 20 UTC and daily
    bars at 00:00 UTC.
    """
    moment = moment.astimezone(UTC)
    seconds = int(timeframe.duration.total_seconds())
    epoch_seconds = int(moment.timestamp())
    return datetime.fromtimestamp(epoch_seconds - epoch_seconds % seconds, UTC)


def row_wise_read_rows(path: Path) -> list[RawBar]:
    """Read a CSV or Parquet file of bars into raw rows, untouched.

    CSV: an unnamed timestamp index column, then Open, High, Low, Close, Volume. Parquet:
    the same columns with the timestamps as the index or in a ``timestamp`` column. Row
    numbers are file lines for CSV (header = 1) and positions for Parquet.
    """
    if not path.is_file():
        raise ValueError(f"replay file not found: {path}")
    parquet = path.suffix.lower() in {".parquet", ".pq"}
    try:
        if parquet:
            frame = pd.read_parquet(path)
            if "timestamp" in frame.columns:
                frame = frame.set_index("timestamp")
        else:
            frame = pd.read_csv(path, index_col=0, dtype=str, keep_default_na=False)
    except (OSError, ValueError, ImportError, pd.errors.ParserError) as error:
        raise ValueError(f"cannot read {path}: {error}") from error
    frame = frame.rename(columns={column: str(column).capitalize() for column in frame.columns})
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; it has {list(frame.columns)}")
    first_row = 1 if parquet else 2
    rows: list[RawBar] = []
    for number, (stamp, open_, high, low, close, volume) in enumerate(
        zip(frame.index, *(frame[column] for column in REQUIRED_COLUMNS), strict=True),
        start=first_row,
    ):
        timestamp = stamp.to_pydatetime() if isinstance(stamp, pd.Timestamp) else str(stamp)
        rows.append(RawBar(number, timestamp, open_, high, low, close, volume))
    return rows
