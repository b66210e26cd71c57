"""Validation: raw rows in, bars and a report out; bad input is reported, never used silently.

Rules, each with a policy (what happens to an offending row):

=================  ===========================================  ==================  =======
rule               checks                                       policies allowed    default
=================  ===========================================  ==================  =======
timestamp          the time parses (naive times: ``naive_timezone``) reject             reject
schema             every price and the volume are numbers       reject              reject
non_finite         no NaN or infinity                           reject              reject
non_positive       prices > 0, volume >= 0                      reject              reject
ohlc_inconsistent  low <= open, close <= high                   reject, repair      reject
misaligned         the open is on the timeframe's UTC grid      reject, repair,     flag
                                                                flag
non_monotonic      times increase                               reject, repair      reject
duplicate          one row per time                             reject, repair      reject
outlier            |return| within ``outlier_max_return`` and   reject, flag        flag
                   the z-score within ``outlier_max_z_score``
gap                bars the trading calendar expects are there  flag                flag
=================  ===========================================  ==================  =======

Repairs: ``ohlc_inconsistent`` widens high/low to contain open and close; ``misaligned``
moves the open down onto the grid; ``non_monotonic`` sorts the rows by time; ``duplicate``
keeps the last row for a time (reject keeps the first). Every time is converted to UTC.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tai_events.market import BarClosed, Timeframe
from tai_ingestion.calendar import TradingCalendar, align, missing_bar_opens
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.models import RawBar

_UTC_ZONE = ZoneInfo("UTC")


class Policy(StrEnum):
    """What happens to a row that breaks a rule."""

    REJECT = "reject"
    REPAIR = "repair"
    FLAG = "flag"


class Rule(StrEnum):
    """The validation rules (their values are metric labels and report keys)."""

    TIMESTAMP = "timestamp"
    SCHEMA = "schema"
    NON_FINITE = "non_finite"
    NON_POSITIVE = "non_positive"
    OHLC_INCONSISTENT = "ohlc_inconsistent"
    MISALIGNED = "misaligned"
    NON_MONOTONIC = "non_monotonic"
    DUPLICATE = "duplicate"
    OUTLIER = "outlier"
    GAP = "gap"


ALLOWED_POLICIES: dict[Rule, frozenset[Policy]] = {
    Rule.TIMESTAMP: frozenset({Policy.REJECT}),
    Rule.SCHEMA: frozenset({Policy.REJECT}),
    Rule.NON_FINITE: frozenset({Policy.REJECT}),
    Rule.NON_POSITIVE: frozenset({Policy.REJECT}),
    Rule.OHLC_INCONSISTENT: frozenset({Policy.REJECT, Policy.REPAIR}),
    Rule.MISALIGNED: frozenset({Policy.REJECT, Policy.REPAIR, Policy.FLAG}),
    Rule.NON_MONOTONIC: frozenset({Policy.REJECT, Policy.REPAIR}),
    Rule.DUPLICATE: frozenset({Policy.REJECT, Policy.REPAIR}),
    Rule.OUTLIER: frozenset({Policy.REJECT, Policy.FLAG}),
    Rule.GAP: frozenset({Policy.FLAG}),
}

DEFAULT_POLICIES: dict[Rule, Policy] = {
    Rule.TIMESTAMP: Policy.REJECT,
    Rule.SCHEMA: Policy.REJECT,
    Rule.NON_FINITE: Policy.REJECT,
    Rule.NON_POSITIVE: Policy.REJECT,
    Rule.OHLC_INCONSISTENT: Policy.REJECT,
    Rule.MISALIGNED: Policy.FLAG,
    Rule.NON_MONOTONIC: Policy.REJECT,
    Rule.DUPLICATE: Policy.REJECT,
    Rule.OUTLIER: Policy.FLAG,
    Rule.GAP: Policy.FLAG,
}


class ValidationConfig(BaseModel):
    """Policies and thresholds of the validator (documented defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policies: dict[Rule, Policy] = Field(default_factory=lambda: dict(DEFAULT_POLICIES))
    naive_timezone: str = Field(default="UTC", description="zone of timestamps without one")
    outlier_max_return: float | None = Field(
        default=0.2, gt=0, description="largest |close-to-close return| accepted; None: off"
    )
    outlier_max_z_score: float | None = Field(
        default=None, gt=0, description="largest |z| of a return vs. the trailing window"
    )
    outlier_window: int = Field(default=50, ge=5, description="returns in the z-score window")
    check_gaps: bool = Field(default=True, description="report bars the calendar expects")

    @model_validator(mode="after")
    def _check_policies(self) -> ValidationConfig:
        for rule, policy in self.policies.items():
            if policy not in ALLOWED_POLICIES[rule]:
                allowed = ", ".join(sorted(ALLOWED_POLICIES[rule]))
                raise ValueError(f"rule {rule.value} allows only: {allowed}")
        ZoneInfo(self.naive_timezone)
        return self

    def policy(self, rule: Rule) -> Policy:
        """Return the policy of ``rule`` (its default when not configured)."""
        return self.policies.get(rule, DEFAULT_POLICIES[rule])


@dataclass(frozen=True, slots=True)
class RowIssue:
    """A row a rule objected to, what was done about it, and why."""

    row: int
    timestamp: str
    rule: str
    reason: str
    action: Policy = Policy.REJECT


@dataclass
class ValidationReport:
    """Every issue found in one batch, and the bars the calendar expected but did not get."""

    issues: list[RowIssue] = field(default_factory=list)
    gaps: list[datetime] = field(default_factory=list)
    accepted: int = 0

    def _count(self, action: Policy) -> dict[str, int]:
        return dict(Counter(str(issue.rule) for issue in self.issues if issue.action is action))

    def rejected_by_rule(self) -> dict[str, int]:
        """Return how many rows each rule rejected."""
        return self._count(Policy.REJECT)

    def repaired_by_rule(self) -> dict[str, int]:
        """Return how many rows each rule repaired."""
        return self._count(Policy.REPAIR)

    def flagged_by_rule(self) -> dict[str, int]:
        """Return how many rows each rule flagged (kept, but reported)."""
        flagged = self._count(Policy.FLAG)
        if self.gaps:
            flagged[Rule.GAP.value] = len(self.gaps)
        return flagged

    @property
    def rejections(self) -> list[RowIssue]:
        """Return the rejected rows."""
        return [issue for issue in self.issues if issue.action is Policy.REJECT]

    @property
    def rejected(self) -> int:
        """Return the number of rejected rows."""
        return len(self.rejections)


@dataclass
class ValidationResult:
    """The bars that passed (time-ordered, UTC) and the report."""

    bars: list[BarClosed]
    report: ValidationReport


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


class Validator:
    """Turn raw rows into valid bars under a ValidationConfig, reporting every objection."""

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
            report.gaps = missing_bar_opens(
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
        aligned = align(candidate.opened_at, timeframe)
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
        return parse_timestamp(value, self._naive_zone)

    def _record(self, report: ValidationReport) -> None:
        if self._metrics is None:
            return
        for rule, count in report.rejected_by_rule().items():
            self._metrics.rows_rejected.labels(rule=rule).inc(count)
        for rule, count in report.repaired_by_rule().items():
            self._metrics.rows_repaired.labels(rule=rule).inc(count)
        for rule, count in report.flagged_by_rule().items():
            self._metrics.rows_flagged.labels(rule=rule).inc(count)


def parse_timestamp(value: datetime | str, naive_zone: ZoneInfo = _UTC_ZONE) -> datetime | None:
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
