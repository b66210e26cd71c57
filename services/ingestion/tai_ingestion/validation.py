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

The rules run on columns (numpy arrays), not row by row: a million rows validate in a fraction
of a second. Python touches a row only where a rule objects to it (to word the finding), where
a timestamp is not ISO 8601, where a number is not plain text, and for the decisions that
depend on earlier ones (a rejected outlier moves the next row's reference close; the z-score
window leaves flagged returns out), which are found by iterating the vectorised rule to its
fixed point. The findings, their order and their wording are those of the row-wise rules the
vectorised ones replaced (tests/unit/ingestion/row_wise_reference.py, compared by the tests).
"""

from __future__ import annotations

import gc
import math
import statistics
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tai_events.market import BarClosed, Timeframe
from tai_ingestion.calendar import (
    MICROSECOND,
    Microseconds,
    TradingCalendar,
    align_microseconds,
    from_microseconds,
    missing_bar_opens_at,
    to_microseconds,
)
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


Floats = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]
Positions = npt.NDArray[np.intp]

COLUMNS = ("open", "high", "low", "close", "volume")
_UTC_ZONE = ZoneInfo("UTC")
_FIELDS_OF_A_BAR = frozenset(BarClosed.model_fields)
_Z_SCORE_TOLERANCE = 1e-6
"""Relative margin around the z-score limit inside which a score is recomputed exactly."""
_Z_SCORE_SPREAD_FLOOR = 1e-3
"""A window whose spread is below this share of its mean is recomputed exactly (cancellation)."""
_Z_SCORE_CELLS = 4_000_000
"""Window values held at once while computing the z-score windows (memory bound)."""
_FIXED_POINT_ROUNDS = 16
"""Rounds of the vectorised outlier rule before the rest is decided row by row."""


class _Problem(IntEnum):
    """What is wrong with one price or volume value (0: nothing)."""

    NONE = 0
    MISSING = 1
    TEXT = 2
    NON_FINITE = 3


@dataclass(frozen=True, eq=False)
class RawColumns:
    """Untrusted OHLCV rows as columns: what a reader or a source hands the validator.

    ``times`` holds the bar opens as received: a ``DatetimeIndex``, or an object array of text
    and/or datetimes. Each price and volume column holds parsed numbers (a float or integer
    dtype) or the raw values (any other dtype). ``rows`` locates each row in its origin.
    """

    rows: npt.NDArray[np.int64]
    times: pd.DatetimeIndex | npt.NDArray[np.object_]
    open: npt.NDArray[Any]
    high: npt.NDArray[Any]
    low: npt.NDArray[Any]
    close: npt.NDArray[Any]
    volume: npt.NDArray[Any]

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def from_raw_bars(cls, rows: Iterable[RawBar]) -> RawColumns:
        """Return the columns of raw rows (values kept as received)."""
        listed = list(rows)
        return cls(
            rows=np.fromiter((raw.row for raw in listed), dtype=np.int64, count=len(listed)),
            times=object_array([raw.timestamp for raw in listed]),
            open=object_array([raw.open for raw in listed]),
            high=object_array([raw.high for raw in listed]),
            low=object_array([raw.low for raw in listed]),
            close=object_array([raw.close for raw in listed]),
            volume=object_array([raw.volume for raw in listed]),
        )

    def column(self, name: str) -> npt.NDArray[Any]:
        """Return the column ``name`` (one of ``COLUMNS``)."""
        values: npt.NDArray[Any] = getattr(self, name)
        return values

    def stamp(self, position: int) -> str:
        """Return the time of the row at ``position`` as reported: its text, or ISO 8601."""
        value = self.times[position]
        if isinstance(value, str):
            return value
        if isinstance(self.times, pd.DatetimeIndex):
            # As a file reader hands a parsed timestamp over: a datetime, nanoseconds dropped.
            return "NaT" if value is pd.NaT else str(value.to_pydatetime().isoformat())
        return str(value.isoformat())


@dataclass(frozen=True, eq=False)
class ValidatedBars:
    """The bars that passed, as columns: time-ordered, UTC, every price checked.

    ``opened_at`` is microseconds since the epoch; ``rows`` are the rows they came from.
    """

    timeframe: Timeframe
    rows: npt.NDArray[np.int64]
    opened_at: Microseconds
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats

    def __len__(self) -> int:
        return len(self.rows)

    def times(self) -> pd.DatetimeIndex:
        """Return the bar opens as a UTC ``DatetimeIndex``."""
        return _utc_index(self.opened_at)

    def frame(self) -> pd.DataFrame:
        """Return an OHLCV frame indexed by the bar opens (UTC)."""
        return pd.DataFrame(
            {
                "Open": self.open,
                "High": self.high,
                "Low": self.low,
                "Close": self.close,
                "Volume": self.volume,
            },
            index=self.times(),
        )

    def to_bars(self, symbol: str, source: str) -> list[BarClosed]:
        """Return one ``BarClosed`` per row.

        The first bar is validated by pydantic (symbol, source and every field rule); the rest
        are built from columns the validator has checked against every rule of a bar (prices
        finite and positive, volume finite and non-negative, low <= open, close <= high, aware
        UTC times one timeframe apart), which a vectorised check confirms first: building a
        million validated models one by one would cost more than everything else together.
        """
        count = len(self)
        if count == 0:
            return []
        self._check_bar_rules()
        duration = self.timeframe.duration // MICROSECOND
        opens = _utc_index(self.opened_at).to_pydatetime().tolist()
        closes = _utc_index(self.opened_at + duration).to_pydatetime().tolist()
        first = BarClosed(
            symbol=symbol,
            timeframe=self.timeframe,
            opened_at=opens[0],
            closed_at=closes[0],
            open=float(self.open[0]),
            high=float(self.high[0]),
            low=float(self.low[0]),
            close=float(self.close[0]),
            volume=float(self.volume[0]),
            source=source,
        )
        collecting = gc.isenabled()
        gc.disable()  # a million new objects would set off collections over all of them
        try:
            return self._trusted_bars(first, opens, closes)
        finally:
            if collecting:
                gc.enable()

    def _trusted_bars(
        self, first: BarClosed, opens: list[datetime], closes: list[datetime]
    ) -> list[BarClosed]:
        bars = [first]
        symbol, timeframe, source = first.symbol, first.timeframe, first.source
        make, assign = BarClosed.__new__, object.__setattr__
        fields_set = _FIELDS_OF_A_BAR
        for opened_at, closed_at, open_, high, low, close, volume in zip(
            opens[1:],
            closes[1:],
            self.open[1:].tolist(),
            self.high[1:].tolist(),
            self.low[1:].tolist(),
            self.close[1:].tolist(),
            self.volume[1:].tolist(),
            strict=True,
        ):
            bar = make(BarClosed)
            assign(
                bar,
                "__dict__",
                {
                    "symbol": symbol,
                    "timeframe": timeframe,
                    "opened_at": opened_at,
                    "closed_at": closed_at,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                    "source": source,
                },
            )
            # each bar its own set: pydantic's model_copy(update=...) adds to it in place
            assign(bar, "__pydantic_fields_set__", set(fields_set))
            assign(bar, "__pydantic_extra__", None)
            assign(bar, "__pydantic_private__", None)
            bars.append(bar)
        return bars

    def _check_bar_rules(self) -> None:
        prices = np.vstack([self.open, self.high, self.low, self.close])
        sound = (
            bool(np.isfinite(prices).all())
            and bool((prices > 0).all())
            and bool(np.isfinite(self.volume).all())
            and bool((self.volume >= 0).all())
            and bool((self.low <= np.minimum(self.open, self.close)).all())
            and bool((self.high >= np.maximum(self.open, self.close)).all())
            and bool((np.diff(self.opened_at) > 0).all())
        )
        if not sound:
            raise ValueError("validated bars break a rule of BarClosed (validator defect)")


@dataclass
class _Findings:
    """The issues of one validation run, in the order the rules report them."""

    raw: RawColumns
    issues: list[RowIssue] = field(default_factory=list)

    def add(self, position: int, rule: Rule, reason: str, action: Policy = Policy.REJECT) -> None:
        self.issues.append(
            RowIssue(int(self.raw.rows[position]), self.raw.stamp(position), rule, reason, action)
        )


@dataclass
class _Candidates:
    """Rows still in play: positions in the raw columns, times and values."""

    positions: Positions
    opened_at: Microseconds
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats

    def take(self, selection: Positions | Flags) -> _Candidates:
        return _Candidates(
            self.positions[selection],
            self.opened_at[selection],
            self.open[selection],
            self.high[selection],
            self.low[selection],
            self.close[selection],
            self.volume[selection],
        )


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

    @property
    def calendar(self) -> TradingCalendar | None:
        """Return the trading calendar gaps are checked against (None: no gap check)."""
        return self._calendar

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
        bars, report = self.validate_columns(
            RawColumns.from_raw_bars(rows), timeframe=timeframe, previous=previous, start=start
        )
        return ValidationResult(bars=bars.to_bars(symbol, source), report=report)

    def validate_columns(
        self,
        raw: RawColumns,
        *,
        timeframe: Timeframe,
        previous: BarClosed | None = None,
        start: datetime | None = None,
    ) -> tuple[ValidatedBars, ValidationReport]:
        """Validate columns of raw rows; return the bars that passed, as columns, and the report."""
        findings = _Findings(raw)
        candidates = self._check_rows(raw, timeframe, start, findings)
        candidates = self._order(candidates, previous, findings)
        candidates = self._outliers(candidates, previous, findings)
        report = ValidationReport(issues=findings.issues, accepted=len(candidates.positions))
        if self.config.check_gaps and self._calendar is not None and report.accepted:
            begin = (
                int(candidates.opened_at[0])
                if previous is None
                else to_microseconds(previous.closed_at)
            )
            end = int(candidates.opened_at[-1]) + timeframe.duration // MICROSECOND
            missing = missing_bar_opens_at(
                self._calendar, timeframe, begin, end, candidates.opened_at
            )
            report.gaps = [from_microseconds(value) for value in missing.tolist()]
        self.record(report)
        validated = ValidatedBars(
            timeframe=timeframe,
            rows=raw.rows[candidates.positions],
            opened_at=candidates.opened_at,
            open=candidates.open,
            high=candidates.high,
            low=candidates.low,
            close=candidates.close,
            volume=candidates.volume,
        )
        return validated, report

    def _check_rows(
        self,
        raw: RawColumns,
        timeframe: Timeframe,
        start: datetime | None,
        findings: _Findings,
    ) -> _Candidates:
        opened_at, parsed = parse_times(raw.times, self._naive_zone)
        # Each row gets at most one finding per step, steps in row order: collect (row
        # position, step, issue) and sort once.
        found: list[tuple[int, int, RowIssue]] = []
        sub = _Findings(raw, [])

        def note(position: int, step: int, rule: Rule, reason: str, action: Policy) -> None:
            sub.add(position, rule, reason, action)
            found.append((position, step, sub.issues[-1]))

        for position in np.flatnonzero(~parsed).tolist():
            note(position, 0, Rule.TIMESTAMP, "unparsable time", Policy.REJECT)
        in_range = parsed if start is None else parsed & (opened_at >= to_microseconds(start))
        positions = np.flatnonzero(in_range)
        values: list[Floats] = []
        problems = np.zeros(len(positions), dtype=np.int8)
        which = np.full(len(positions), -1, dtype=np.int8)
        for index, name in enumerate(COLUMNS):
            numbers, problem = parse_numbers(raw.column(name)[positions])
            values.append(numbers)
            first = (problem != _Problem.NONE) & (problems == _Problem.NONE)
            problems[first] = problem[first]
            which[first] = index
        for slot in np.flatnonzero(problems).tolist():
            name = COLUMNS[which[slot]]
            kind = _Problem(int(problems[slot]))
            if kind is _Problem.NON_FINITE:
                rule, reason = Rule.NON_FINITE, "a price or volume is not a finite number"
            elif kind is _Problem.MISSING:
                rule, reason = Rule.SCHEMA, f"{name} is missing or not a number"
            else:
                value = raw.column(name)[positions[slot]]
                rule, reason = Rule.SCHEMA, f"{name} is not a number: {value!r}"
            note(int(positions[slot]), 1, rule, reason, Policy.REJECT)
        candidates = _Candidates(positions, opened_at[positions], *values)
        candidates = candidates.take(problems == _Problem.NONE)
        prices = np.vstack([candidates.open, candidates.high, candidates.low, candidates.close])
        positive = (prices.min(axis=0) > 0) & (candidates.volume >= 0)
        for position in candidates.positions[~positive].tolist():
            note(
                position,
                1,
                Rule.NON_POSITIVE,
                "non-positive price or negative volume",
                Policy.REJECT,
            )
        candidates = candidates.take(positive)
        kept = self._consistent_or_repaired(candidates, note)
        candidates = candidates.take(kept)
        kept = self._aligned_or_handled(candidates, timeframe, note)
        candidates = candidates.take(kept)
        found.sort(key=lambda item: (item[0], item[1]))
        findings.issues.extend(issue for _, _, issue in found)
        return candidates

    def _consistent_or_repaired(self, candidates: _Candidates, note: _Note) -> Flags:
        c = candidates
        consistent = (c.low <= np.minimum(c.open, c.close)) & (
            c.high >= np.maximum(c.open, c.close)
        )
        if consistent.all():
            return consistent
        policy = self.config.policy(Rule.OHLC_INCONSISTENT)
        for slot in np.flatnonzero(~consistent).tolist():
            reason = (
                f"inconsistent OHLC: low={float(c.low[slot])} open={float(c.open[slot])} "
                f"close={float(c.close[slot])} high={float(c.high[slot])}"
            )
            note(int(c.positions[slot]), 1, Rule.OHLC_INCONSISTENT, reason, policy)
        if policy is not Policy.REPAIR:
            return consistent
        broken = ~consistent
        widest = np.maximum.reduce([c.open, c.high, c.low, c.close])
        c.high = np.where(broken, widest, c.high)
        c.low = np.where(broken, np.minimum.reduce([c.open, c.high, c.low, c.close]), c.low)
        return np.ones(len(consistent), dtype=np.bool_)

    def _aligned_or_handled(
        self, candidates: _Candidates, timeframe: Timeframe, note: _Note
    ) -> Flags:
        aligned = align_microseconds(candidates.opened_at, timeframe)
        on_grid: Flags = aligned == candidates.opened_at
        if on_grid.all():
            return on_grid
        policy = self.config.policy(Rule.MISALIGNED)
        for slot in np.flatnonzero(~on_grid).tolist():
            nearest = from_microseconds(int(aligned[slot]))
            reason = f"open is not on the {timeframe.value} UTC grid (nearest open {nearest})"
            note(int(candidates.positions[slot]), 2, Rule.MISALIGNED, reason, policy)
        if policy is Policy.REPAIR:
            candidates.opened_at = aligned
        if policy is Policy.REJECT:
            return on_grid
        return np.ones(len(on_grid), dtype=np.bool_)

    def _order(
        self, candidates: _Candidates, previous: BarClosed | None, findings: _Findings
    ) -> _Candidates:
        times = candidates.opened_at
        if self.config.policy(Rule.NON_MONOTONIC) is Policy.REPAIR:
            order = np.argsort(times, kind="stable")
            for slot in np.flatnonzero(order != np.arange(len(order))).tolist():
                findings.add(
                    int(candidates.positions[slot]),
                    Rule.NON_MONOTONIC,
                    "out of time order; sorted",
                    Policy.REPAIR,
                )
            candidates = candidates.take(order)
            times = candidates.opened_at
        count = len(times)
        if count == 0:
            return candidates
        # The last time kept before each row is the largest time before it: a kept row raises
        # it, a refused one (equal or earlier) cannot.
        latest = np.empty(count, dtype=np.int64)
        latest[1:] = np.maximum.accumulate(times)[:-1]
        has_latest = np.ones(count, dtype=np.bool_)
        if previous is None:
            has_latest[0] = False
            latest[0] = 0
        else:
            previous_open = to_microseconds(previous.opened_at)
            latest[0] = previous_open
            latest[1:] = np.maximum(latest[1:], previous_open)
        duplicate = has_latest & (times == latest)
        earlier = has_latest & (times < latest)
        kept = ~duplicate & ~earlier
        if not (duplicate.any() or earlier.any()):
            return candidates
        repair = self.config.policy(Rule.DUPLICATE) is Policy.REPAIR
        kept_slots = np.flatnonzero(kept)
        first_kept = int(kept_slots[0]) if len(kept_slots) else count
        # A duplicate replaces the kept row of its time once a row was kept (before that it
        # repeats the previous batch's last bar, which is not ours to replace).
        replaces = duplicate & (np.arange(count) > first_kept) & repair
        before = _previous_with_same_value(times)
        for slot in np.flatnonzero(duplicate | earlier).tolist():
            position = int(candidates.positions[slot])
            if earlier[slot]:
                seen = from_microseconds(int(latest[slot]))
                findings.add(position, Rule.NON_MONOTONIC, f"time does not increase after {seen}")
            elif replaces[slot]:
                findings.add(
                    int(candidates.positions[before[slot]]),
                    Rule.DUPLICATE,
                    f"replaced by row {int(findings.raw.rows[position])}",
                    Policy.REPAIR,
                )
            else:
                moment = from_microseconds(int(times[slot]))
                findings.add(position, Rule.DUPLICATE, f"time {moment} already seen")
        if not replaces.any():
            return candidates.take(kept)
        # Each kept time ends with the last row that replaced its row (times do not decrease
        # along kept and replacing rows, so each time is one run).
        chosen = np.flatnonzero(kept | replaces)
        chosen_times = times[chosen]
        last_of_run = np.append(chosen_times[1:] != chosen_times[:-1], True)
        return candidates.take(chosen[last_of_run])

    def _outliers(
        self, candidates: _Candidates, previous: BarClosed | None, findings: _Findings
    ) -> _Candidates:
        config = self.config
        max_return, max_z = config.outlier_max_return, config.outlier_max_z_score
        if len(candidates.close) == 0 or (max_return is None and max_z is None):
            return candidates
        policy = config.policy(Rule.OUTLIER)
        previous_close = previous.close if previous is not None else None
        if max_z is not None:
            rule = _OutlierRule(
                max_return, max_z, config.outlier_window, reject=policy is Policy.REJECT
            )
            flagged, reasons = rule.decide(candidates.close, previous_close)
        elif max_return is not None:
            changes = _return_outliers(
                candidates.close, previous_close, max_return, reject=policy is Policy.REJECT
            )
            flagged = np.zeros(len(candidates.close), dtype=np.bool_)
            flagged[list(changes)] = True
            reasons = {slot: _return_reason(change, max_return) for slot, change in changes.items()}
        for slot in np.flatnonzero(flagged).tolist():
            findings.add(int(candidates.positions[slot]), Rule.OUTLIER, reasons[slot], policy)
        if policy is Policy.REJECT and flagged.any():
            return candidates.take(~flagged)
        return candidates

    def record(self, report: ValidationReport) -> None:
        """Count a report's rejected, repaired and flagged rows in the metrics (if any)."""
        if self._metrics is None:
            return
        for rule, count in report.rejected_by_rule().items():
            self._metrics.rows_rejected.labels(rule=rule).inc(count)
        for rule, count in report.repaired_by_rule().items():
            self._metrics.rows_repaired.labels(rule=rule).inc(count)
        for rule, count in report.flagged_by_rule().items():
            self._metrics.rows_flagged.labels(rule=rule).inc(count)


class _Note(Protocol):
    def __call__(
        self, position: int, step: int, rule: Rule, reason: str, action: Policy
    ) -> None: ...


def object_array(values: list[Any]) -> npt.NDArray[np.object_]:
    """Return ``values`` as a one-dimensional object array (never nested)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _utc_index(microseconds: Microseconds) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(microseconds.astype("datetime64[us]")).tz_localize(UTC)


def _previous_with_same_value(values: Microseconds) -> Positions:
    """Return, per slot, the slot before it holding the same value (-1: none)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    before = np.full(len(values), -1, dtype=np.intp)
    same = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
    before[order[same]] = order[same - 1]
    return before


# ---- timestamps ---------------------------------------------------------------------------


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


def parse_times(
    times: pd.DatetimeIndex | npt.NDArray[np.object_], naive_zone: ZoneInfo = _UTC_ZONE
) -> tuple[Microseconds, Flags]:
    """Return each time as microseconds since the epoch (UTC) and whether it parsed.

    As ``parse_timestamp`` element by element: a ``DatetimeIndex`` and ISO 8601 text are
    converted at once; what the vectorised path cannot place (other text, ambiguous or
    non-existent local times, mixed offsets without a UTC zone for naive times) goes through
    ``parse_timestamp`` one value at a time.
    """
    count = len(times)
    opened_at = np.zeros(count, dtype=np.int64)
    parsed = np.zeros(count, dtype=np.bool_)
    if count == 0:
        return opened_at, parsed
    if isinstance(times, pd.DatetimeIndex):
        _from_index(times, naive_zone, opened_at, parsed)
        retry = np.flatnonzero(~parsed & ~np.asarray(times.isna()))
        values: npt.NDArray[np.object_] = object_array(
            [times[position].to_pydatetime() for position in retry.tolist()]
        )
    elif pd.api.types.infer_dtype(times, skipna=False) == "string":
        _from_text(times, naive_zone, opened_at, parsed)
        retry = np.flatnonzero(~parsed)
        values = times[retry]
    else:
        retry = np.arange(count)
        values = times
    for position, value in zip(retry.tolist(), values.tolist(), strict=True):
        moment = parse_timestamp(value, naive_zone)
        if moment is not None:
            opened_at[position] = to_microseconds(moment)
            parsed[position] = True
    return opened_at, parsed


def _from_index(
    index: pd.DatetimeIndex, naive_zone: ZoneInfo, opened_at: Microseconds, parsed: Flags
) -> None:
    if index.tz is None:
        zone = UTC if naive_zone == _UTC_ZONE else naive_zone
        index = index.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    _store(index.tz_convert(UTC), opened_at, parsed)


def _from_text(
    texts: npt.NDArray[np.object_], naive_zone: ZoneInfo, opened_at: Microseconds, parsed: Flags
) -> None:
    naive_in_utc = naive_zone == _UTC_ZONE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            index = pd.DatetimeIndex(
                pd.to_datetime(
                    pd.Index(texts, dtype=object),
                    format="ISO8601",
                    errors="coerce",
                    utc=naive_in_utc,
                )
            )
    except (ValueError, TypeError, OverflowError):
        return  # mixed offsets and naive times outside UTC: one by one
    if index.tz is None:
        index = index.tz_localize(naive_zone, ambiguous="NaT", nonexistent="NaT")
    _store(index.tz_convert(UTC), opened_at, parsed)


def _store(index: pd.DatetimeIndex, opened_at: Microseconds, parsed: Flags) -> None:
    """Write a UTC index's times (microseconds, finer units floored) where they are not NaT."""
    valid = ~np.asarray(index.isna())
    ticks = index.asi8
    unit = index.unit
    if unit == "ns":
        microseconds = ticks // 1000
    elif unit == "us":
        microseconds = ticks
    elif unit == "ms":
        microseconds = ticks * 1000
    else:
        microseconds = ticks * 1_000_000
    opened_at[valid] = microseconds[valid]
    parsed[valid] = True


# ---- numbers --------------------------------------------------------------------------------


def parse_numbers(values: npt.NDArray[Any]) -> tuple[Floats, npt.NDArray[np.int8]]:
    """Return each value as a float and what is wrong with it (``_Problem``; 0: nothing).

    Numbers as Python's ``float`` reads them (text through ``float(str(value))``); booleans and
    None are missing values, text that is no number is reported as such.
    """
    kind = values.dtype.kind
    if kind in "fiu":
        numbers = values.astype(np.float64)
        problems = np.where(np.isfinite(numbers), _Problem.NONE, _Problem.NON_FINITE)
        return numbers, problems.astype(np.int8)
    if kind == "b":
        return np.zeros(len(values)), np.full(len(values), _Problem.MISSING, dtype=np.int8)
    objects = values.astype(object)
    numbers = np.zeros(len(values))
    problems = np.zeros(len(values), dtype=np.int8)
    if len(values) and pd.api.types.infer_dtype(objects, skipna=False) == "string":
        slow = _numbers_from_text(objects, numbers)
    else:
        slow = np.arange(len(values))
    for slot, value in zip(slow.tolist(), objects[slow].tolist(), strict=True):
        numbers[slot], problems[slot] = _number(value)
    problems[(problems == _Problem.NONE) & ~np.isfinite(numbers)] = _Problem.NON_FINITE
    return numbers, problems


def _numbers_from_text(texts: npt.NDArray[np.object_], numbers: Floats) -> Positions:
    """Fill ``numbers`` from text at numpy speed; return the slots to read one by one."""
    try:
        numbers[:] = texts.astype(np.float64)  # Python's float() on each, in C
        return np.empty(0, dtype=np.intp)
    except ValueError:
        pass
    # Some text is no number: pandas finds the plain numbers, which float() then reads.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guess = np.asarray(pd.to_numeric(texts, errors="coerce"), dtype=np.float64)
    plain = np.flatnonzero(~np.isnan(guess))
    try:
        numbers[plain] = texts[plain].astype(np.float64)
    except ValueError:
        return np.arange(len(texts))
    return np.flatnonzero(np.isnan(guess))


def _number(value: object) -> tuple[float, _Problem]:
    if isinstance(value, bool) or value is None:
        return 0.0, _Problem.MISSING
    try:
        number = float(value) if isinstance(value, int | float) else float(str(value))
    except (TypeError, ValueError):
        return 0.0, _Problem.TEXT
    return number, _Problem.NONE if math.isfinite(number) else _Problem.NON_FINITE


# ---- outliers -------------------------------------------------------------------------------


def _return_reason(change: float, max_return: float) -> str:
    return f"return {change:.4%} exceeds {max_return:.4%}"


def _return_outliers(
    closes: Floats, previous_close: float | None, max_return: float, *, reject: bool
) -> dict[int, float]:
    """Return the rows whose close-to-close return exceeds ``max_return``, with the return.

    Flagged rows stay the reference for the next return; rejected ones do not, so after a
    rejection the following rows are compared with the last kept close until one is kept.
    """
    count = len(closes)
    reference = np.empty(count)
    reference[1:] = closes[:-1]
    reference[:1] = previous_close if previous_close is not None else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        changes = closes / reference - 1.0
    speculative = np.flatnonzero(np.abs(changes) > max_return)  # NaN: no reference, False
    if not reject:
        return dict(zip(speculative.tolist(), changes[speculative].tolist(), strict=True))
    values = closes.tolist()
    found: dict[int, float] = {}
    slot = 0
    while True:
        # Every row before ``slot`` kept the one before it: its return above is exact.
        following = int(np.searchsorted(speculative, slot))
        if following == len(speculative):
            return found
        slot = int(speculative[following])
        found[slot] = float(changes[slot])
        last_kept = float(reference[slot])  # the close its return was measured against
        slot += 1
        while slot < count:
            change = values[slot] / last_kept - 1.0
            if abs(change) <= max_return:
                break
            found[slot] = change
            slot += 1
        slot += 1


@dataclass(frozen=True)
class _OutlierRule:
    """Outliers by return and by z-score against the trailing window of unflagged returns.

    A row's decision depends on earlier decisions (the window leaves flagged returns out, a
    rejected row is no reference). The vectorised rule maps a guess of the flagged rows to the
    flags it implies; since each flag depends only on earlier ones, iterating it fixes one more
    leading row per round at least and its fixed point is exactly the row-by-row result. After
    ``_FIXED_POINT_ROUNDS`` the rows not yet settled are decided one by one.
    """

    max_return: float | None
    max_z: float
    window: int
    reject: bool

    def decide(self, closes: Floats, previous_close: float | None) -> tuple[Flags, dict[int, str]]:
        count = len(closes)
        guess = np.zeros(count, dtype=np.bool_)
        for _ in range(_FIXED_POINT_ROUNDS):
            flagged, reasons = self._implied(closes, previous_close, guess)
            if np.array_equal(flagged, guess):
                return flagged, reasons
            differs = np.flatnonzero(flagged != guess)
            guess = flagged
            settled = int(differs[0])
        return self._row_by_row(closes, previous_close, guess, settled)

    def _implied(
        self, closes: Floats, previous_close: float | None, flagged: Flags
    ) -> tuple[Flags, dict[int, str]]:
        count = len(closes)
        slots = np.arange(count)
        kept = ~flagged if self.reject else np.ones(count, dtype=np.bool_)
        # The reference close of each row: the last kept close before it.
        last_kept = np.maximum.accumulate(np.where(kept, slots, -1))
        before = np.empty(count, dtype=np.intp)
        before[0] = -1
        before[1:] = last_kept[:-1]
        reference = np.where(before >= 0, closes[np.maximum(before, 0)], np.nan)
        if previous_close is not None:
            reference = np.where(before >= 0, reference, previous_close)
        checked = ~np.isnan(reference)
        with np.errstate(invalid="ignore", divide="ignore"):
            changes = closes / reference - 1.0
        by_return = (
            checked & (np.abs(changes) > self.max_return)
            if self.max_return is not None
            else np.zeros(count, dtype=np.bool_)
        )
        appended = checked & ~flagged
        returns = np.log1p(changes[appended])
        exact_returns = changes[appended].tolist()
        # Returns in the window before each row: the last ``window`` appended before it.
        behind: Positions = np.cumsum(appended) - appended
        size = np.minimum(behind, self.window)
        eligible = checked & ~by_return & (size >= min(self.window, 20))
        implied = by_return.copy()
        reasons = {
            slot: _return_reason(change, self.max_return)
            for slot, change in zip(
                np.flatnonzero(by_return).tolist(), changes[by_return].tolist(), strict=True
            )
            if self.max_return is not None
        }
        rows = np.flatnonzero(eligible)
        if len(rows):
            mean, spread = _window_statistics(returns, behind[rows], size[rows])
            with np.errstate(invalid="ignore", divide="ignore"):
                score = (np.log1p(changes[rows]) - mean) / spread
            unsure = (spread <= _Z_SCORE_SPREAD_FLOOR * np.abs(mean)) | ~(
                np.abs(score) < self.max_z * (1.0 - _Z_SCORE_TOLERANCE)
            )
            for slot, end, length in zip(
                rows[unsure].tolist(),
                behind[rows][unsure].tolist(),
                size[rows][unsure].tolist(),
                strict=True,
            ):
                window = [math.log1p(change) for change in exact_returns[end - length : end]]
                reason = self._z_reason(float(changes[slot]), window)
                if reason is not None:
                    implied[slot] = True
                    reasons[slot] = reason
        return implied, reasons

    def _z_reason(self, change: float, window: list[float]) -> str | None:
        spread = statistics.pstdev(window)
        if spread > 0:
            score = (math.log1p(change) - statistics.fmean(window)) / spread
            if abs(score) > self.max_z:
                return f"return z-score {score:.1f} exceeds {self.max_z}"
        return None

    def _row_by_row(
        self, closes: Floats, previous_close: float | None, guess: Flags, settled: int
    ) -> tuple[Flags, dict[int, str]]:
        """Keep the decisions before ``settled``; decide the rest one row at a time."""
        flagged, reasons = self._implied(closes, previous_close, guess)
        flagged[settled:] = False
        reasons = {slot: reason for slot, reason in reasons.items() if slot < settled}
        values = closes.tolist()
        window: list[float] = []
        last_close = previous_close
        for slot in range(settled):  # the state the settled rows leave
            if last_close is not None and not flagged[slot]:
                window.append(math.log1p(values[slot] / last_close - 1.0))
            if not self.reject or not flagged[slot]:
                last_close = values[slot]
        del window[: -self.window]
        for slot in range(settled, len(values)):
            if last_close is None:
                last_close = values[slot]
                continue
            change = values[slot] / last_close - 1.0
            reason: str | None = None
            if self.max_return is not None and abs(change) > self.max_return:
                reason = _return_reason(change, self.max_return)
            elif len(window) >= min(self.window, 20):
                reason = self._z_reason(change, window)
            if reason is not None:
                flagged[slot] = True
                reasons[slot] = reason
                if self.reject:
                    continue
            else:
                window.append(math.log1p(change))
                del window[: -self.window]
            last_close = values[slot]
        return flagged, reasons


def _window_statistics(returns: Floats, ends: Positions, sizes: Positions) -> tuple[Floats, Floats]:
    """Return the mean and population deviation of ``returns[end - size : end]`` per window.

    Two passes (the mean, then the squared deviations), in chunks: accurate well inside the
    margin the caller recomputes exactly.
    """
    mean = np.empty(len(ends))
    spread = np.empty(len(ends))
    chunk = max(1, _Z_SCORE_CELLS // int(sizes.max()))
    for begin in range(0, len(ends), chunk):
        end = ends[begin : begin + chunk]
        size = sizes[begin : begin + chunk]
        width = int(size.max())
        offsets = np.arange(width) - width
        index = end[:, None] + offsets[None, :]
        inside = offsets[None, :] >= -size[:, None]
        values = np.where(inside, returns[np.maximum(index, 0)], 0.0)
        centre = values.sum(axis=1) / size
        deviation = np.where(inside, values - centre[:, None], 0.0)
        mean[begin : begin + chunk] = centre
        spread[begin : begin + chunk] = np.sqrt((deviation**2).sum(axis=1) / size)
    return mean, spread
