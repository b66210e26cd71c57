"""The vectorised validator finds exactly what the row-wise rules found, finding by finding.

The row-wise implementation it replaced lives on in ``row_wise_reference`` as the oracle. Both
run on the bundled data and on corrupted data (hypothesis corrupts text cells, times, order and
prices, picks policies, thresholds, zones, calendars, timeframes); every issue (row, time,
rule, reason, action), every gap, and every bar (each field, and its JSON) must be equal.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tai_events.market import BarClosed, Timeframe
from tai_ingestion.calendar import (
    EquityCalendar,
    ForexCalendar,
    TradingCalendar,
    align,
    missing_bar_opens,
    to_microseconds,
)
from tai_ingestion.models import RawBar
from tai_ingestion.replay import load_bars
from tai_ingestion.samples import sample_path
from tai_ingestion.validation import (
    ALLOWED_POLICIES,
    Rule,
    ValidationConfig,
    ValidationResult,
    Validator,
)
from tests.unit.ingestion.row_wise_reference import (
    RowWiseValidator,
    row_wise_missing_bar_opens,
    row_wise_read_rows,
)

SHARED = Path("/work/shared/data")


def _assert_same(expected: ValidationResult, actual: ValidationResult) -> None:
    assert actual.report.issues == expected.report.issues
    assert actual.report.gaps == expected.report.gaps
    assert actual.report.accepted == expected.report.accepted
    assert actual.bars == expected.bars
    assert [bar.model_dump_json() for bar in actual.bars] == [
        bar.model_dump_json() for bar in expected.bars
    ]
    assert all(bar.opened_at.tzinfo is UTC for bar in actual.bars)


def _both(
    rows: list[RawBar],
    config: ValidationConfig,
    calendar: TradingCalendar | None = None,
    *,
    timeframe: Timeframe = Timeframe.H1,
    previous: BarClosed | None = None,
    start: datetime | None = None,
) -> tuple[ValidationResult, ValidationResult]:
    arguments = {
        "symbol": "EURUSD",
        "timeframe": timeframe,
        "source": "test",
        "previous": previous,
        "start": start,
    }
    expected = RowWiseValidator(config, calendar=calendar).validate(rows, **arguments)  # type: ignore[arg-type]
    actual = Validator(config, calendar=calendar).validate(rows, **arguments)  # type: ignore[arg-type]
    return expected, actual


def _file_both(
    path: Path,
    config: ValidationConfig,
    calendar: TradingCalendar | None,
    timeframe: Timeframe,
    start: datetime | None = None,
) -> tuple[ValidationResult, ValidationResult]:
    expected = RowWiseValidator(config, calendar=calendar).validate(
        row_wise_read_rows(path), symbol="EURUSD", timeframe=timeframe, source="replay", start=start
    )
    data = load_bars(
        path,
        symbol="EURUSD",
        timeframe=timeframe,
        start=start,
        validator=Validator(config, calendar=calendar),
    )
    return expected, ValidationResult(bars=data.bars, report=data.report)


CONFIGS = {
    "default": ValidationConfig(),
    "repairs": ValidationConfig(
        policies={
            Rule.OHLC_INCONSISTENT: "repair",
            Rule.MISALIGNED: "repair",
            Rule.NON_MONOTONIC: "repair",
            Rule.DUPLICATE: "repair",
        }
    ),
    "strict": ValidationConfig(
        policies={Rule.OUTLIER: "reject", Rule.MISALIGNED: "reject"}, outlier_max_return=0.004
    ),
    "z_flag": ValidationConfig(outlier_max_return=0.01, outlier_max_z_score=3.0),
    "z_reject": ValidationConfig(
        policies={Rule.OUTLIER: "reject"}, outlier_max_return=None, outlier_max_z_score=3.5
    ),
    "z_window": ValidationConfig(
        outlier_max_return=None, outlier_max_z_score=2.5, outlier_window=7
    ),
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize(
    ("name", "calendar", "timeframe"),
    [
        ("EURUSD.csv", ForexCalendar(), Timeframe.H1),
        ("GOOG.csv", EquityCalendar(), Timeframe.D1),
        ("GOOG.csv", None, Timeframe.D1),
    ],
)
def test_bundled_data_gives_the_same_findings(
    name: str, calendar: TradingCalendar | None, timeframe: Timeframe, config: ValidationConfig
) -> None:
    # Arrange
    path = sample_path(name)
    # Act
    expected, actual = _file_both(path, config, calendar, timeframe)
    # Assert
    _assert_same(expected, actual)
    assert expected.bars  # the comparison is not vacuous


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared data directory on this machine")
@pytest.mark.parametrize("name", ["EURUSD.csv", "GOOG.csv"])
def test_shared_data_gives_the_same_findings(name: str) -> None:
    path = SHARED / name
    timeframe = Timeframe.H1 if name.startswith("EURUSD") else Timeframe.D1
    expected, actual = _file_both(path, ValidationConfig(), ForexCalendar(), timeframe)
    _assert_same(expected, actual)


def test_a_long_noisy_series_gives_the_same_z_score_findings() -> None:
    # Arrange: many outliers, so the z-score windows change after each one (the fixed point
    # takes several rounds, and the rejecting variant falls back to row by row)
    generator = np.random.default_rng(7)
    count = 4000
    returns = generator.standard_t(2, count) * 0.001
    closes = 1.1 * np.exp(np.cumsum(returns))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        RawBar(index, start + index * timedelta(hours=1), close, close, close, close, 1.0)
        for index, close in enumerate(closes.tolist())
    ]
    for config in (
        ValidationConfig(outlier_max_return=0.01, outlier_max_z_score=3.0, check_gaps=False),
        ValidationConfig(
            policies={Rule.OUTLIER: "reject"},
            outlier_max_return=0.004,
            outlier_max_z_score=2.0,
            check_gaps=False,
        ),
    ):
        # Act
        expected, actual = _both(rows, config)
        # Assert
        _assert_same(expected, actual)
        assert expected.report.flagged_by_rule() or expected.report.rejected_by_rule()


# ---- corrupted data ---------------------------------------------------------------------------

HOUR = timedelta(hours=1)
T0 = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday, weeks before the European DST change
JUNK_TEXT = ["", "nan", "NaN", "inf", "-inf", "Infinity", "abc", "1_000", " 1.5 ", "True", "0x10"]
JUNK_TIMES = ["", "NaT", "not a time", "2024-13-01 00:00:00", "yesterday", "2024-03-04"]


@st.composite
def corrupted_rows(draw: st.DrawFn) -> tuple[list[tuple[str, ...]], Timeframe]:
    """Return text rows (time, open, high, low, close, volume) and their timeframe."""
    timeframe = draw(st.sampled_from([Timeframe.M15, Timeframe.H1, Timeframe.H4, Timeframe.D1]))
    count = draw(st.integers(min_value=0, max_value=60))
    step = timeframe.duration
    # A start that may fall on a weekend or near a DST change of the zones drawn below.
    start = T0 + draw(st.integers(min_value=0, max_value=24 * 40)) * HOUR
    price = draw(st.floats(min_value=0.5, max_value=500.0))
    rows: list[list[str]] = []
    moment = start
    for _ in range(count):
        moment += step * draw(st.sampled_from([1, 1, 1, 1, 2, 3, 0, -1]))
        price *= math.exp(draw(st.floats(min_value=-0.02, max_value=0.02)))
        if draw(st.integers(0, 30)) == 0:
            price *= draw(st.sampled_from([1.5, 0.6, 3.0]))  # a spike
        spread = price * draw(st.floats(min_value=0.0, max_value=0.01))
        open_ = price * (1 + draw(st.floats(min_value=-0.004, max_value=0.004)))
        cells = [
            _time_text(draw, moment),
            repr(open_),
            repr(max(open_, price) + spread),
            repr(min(open_, price) - spread),
            repr(price),
            str(draw(st.integers(min_value=0, max_value=10_000))),
        ]
        if draw(st.integers(0, 8)) == 0:  # one corrupted cell
            column = draw(st.integers(0, 5))
            cells[column] = draw(
                st.sampled_from(JUNK_TIMES)
                if column == 0
                else st.sampled_from([*JUNK_TEXT, "0", "-1.5", repr(price * 2), repr(-price)])
            )
        if draw(st.integers(0, 12)) == 0:  # off the timeframe's grid
            cells[0] = _time_text(draw, moment + timedelta(minutes=7))
        rows.append(cells)
    if rows and draw(st.booleans()):  # rows out of order
        first = draw(st.integers(0, len(rows) - 1))
        second = draw(st.integers(0, len(rows) - 1))
        rows[first], rows[second] = rows[second], rows[first]
    return [tuple(cells) for cells in rows], timeframe


def _time_text(draw: st.DrawFn, moment: datetime) -> str:
    style = draw(st.sampled_from(["space", "iso", "offset", "zulu", "micro"]))
    if style == "space":
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    if style == "iso":
        return moment.replace(tzinfo=None).isoformat()
    if style == "offset":
        hours, minutes = draw(st.sampled_from([(1, 0), (-5, 0), (5, 30)]))
        shift = timedelta(hours=hours, minutes=minutes if hours > 0 else -minutes)
        sign = "+" if hours >= 0 else "-"
        local = (moment + shift).replace(tzinfo=None).isoformat()
        return f"{local}{sign}{abs(hours):02d}:{minutes:02d}"
    if style == "zulu":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (moment + timedelta(microseconds=draw(st.integers(0, 999_999)))).strftime(
        "%Y-%m-%d %H:%M:%S.%f"
    )


@st.composite
def configs(draw: st.DrawFn) -> ValidationConfig:
    policies = {rule: draw(st.sampled_from(sorted(ALLOWED_POLICIES[rule]))) for rule in Rule}
    return ValidationConfig(
        policies=policies,
        naive_timezone=draw(st.sampled_from(["UTC", "Europe/London", "America/New_York"])),
        outlier_max_return=draw(st.sampled_from([None, 0.2, 0.01, 0.003])),
        outlier_max_z_score=draw(st.sampled_from([None, None, 1.5, 3.0])),
        outlier_window=draw(st.sampled_from([5, 20, 50])),
        check_gaps=draw(st.booleans()),
    )


CALENDARS = st.sampled_from(
    [None, ForexCalendar(), EquityCalendar(), EquityCalendar("Asia/Kolkata")]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=corrupted_rows(),
    config=configs(),
    calendar=CALENDARS,
    previous_at=st.none() | st.integers(min_value=-24, max_value=24 * 40),
)
def test_corrupted_rows_give_the_same_findings(
    data: tuple[list[tuple[str, ...]], Timeframe],
    config: ValidationConfig,
    calendar: TradingCalendar | None,
    previous_at: int | None,
) -> None:
    # Arrange: the last bar of a previous batch, before, among or after these rows' times
    cells, timeframe = data
    rows = [RawBar(index + 2, *row) for index, row in enumerate(cells)]
    previous = None
    if previous_at is not None:
        opened_at = align(T0 + previous_at * HOUR, timeframe)
        previous = BarClosed(
            symbol="EURUSD",
            timeframe=timeframe,
            opened_at=opened_at,
            closed_at=opened_at + timeframe.duration,
            open=1.0,
            high=1.0,
            low=1.0,
            close=1.0,
            volume=0.0,
            source="test",
        )
    # Act
    expected, actual = _both(rows, config, calendar, timeframe=timeframe, previous=previous)
    # Assert
    _assert_same(expected, actual)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=corrupted_rows(), config=configs(), calendar=CALENDARS, cut=st.integers(0, 48))
def test_corrupted_files_load_to_the_same_findings(
    tmp_path_factory: pytest.TempPathFactory,
    data: tuple[list[tuple[str, ...]], Timeframe],
    config: ValidationConfig,
    calendar: TradingCalendar | None,
    cut: int,
) -> None:
    # Arrange: the CSV as a user would have it (unnamed time column first)
    cells, timeframe = data
    path = tmp_path_factory.mktemp("csv") / "bars.csv"
    lines = [",Open,High,Low,Close,Volume", *(",".join(row) for row in cells)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    start = T0 + cut * HOUR if cut else None
    # Act
    expected, actual = _file_both(path, config, calendar, timeframe, start)
    # Assert
    _assert_same(expected, actual)


def test_a_parquet_file_loads_to_the_same_findings(tmp_path: Path) -> None:
    # Arrange: a parsed, naive time index (the DST change of New York inside it)
    frame = pd.read_csv(sample_path("EURUSD.csv"), index_col=0, parse_dates=True)
    frame = frame.iloc[:1500].copy()
    frame.index = frame.index + (datetime(2017, 11, 1) - frame.index[0].to_pydatetime())
    frame.iloc[10, frame.columns.get_loc("Close")] = float("nan")
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    config = ValidationConfig(naive_timezone="America/New_York")
    # Act
    expected, actual = _file_both(path, config, ForexCalendar(), Timeframe.H1)
    # Assert
    _assert_same(expected, actual)
    assert expected.report.rejected_by_rule()


@settings(max_examples=200, deadline=None)
@given(
    calendar=CALENDARS.filter(lambda calendar: calendar is not None),
    timeframe=st.sampled_from(list(Timeframe)),
    offset=st.integers(min_value=0, max_value=24 * 60),
    span=st.integers(min_value=1, max_value=24 * 9),
    holes=st.lists(st.integers(min_value=0, max_value=400), max_size=40),
)
def test_gaps_are_the_calendar_s_bars_that_are_missing(
    calendar: TradingCalendar,
    timeframe: Timeframe,
    offset: int,
    span: int,
    holes: list[int],
) -> None:
    # Arrange
    start = T0 + timedelta(minutes=offset)
    end = start + span * HOUR * (24 if timeframe is Timeframe.D1 else 1)
    grid = [T0 + index * timeframe.duration for index in range(-2, 400)]
    present = {moment for index, moment in enumerate(grid) if index not in holes}
    # Act
    actual = missing_bar_opens(calendar, timeframe, start, end, present)
    # Assert
    assert actual == row_wise_missing_bar_opens(calendar, timeframe, start, end, present)


@settings(max_examples=100, deadline=None)
@given(
    calendar=CALENDARS.filter(lambda calendar: calendar is not None),
    timeframe=st.sampled_from(list(Timeframe)),
    opens=st.lists(st.integers(min_value=0, max_value=24 * 60 * 400), min_size=1, max_size=50),
)
def test_vectorised_calendar_answers_as_bar_by_bar(
    calendar: ForexCalendar | EquityCalendar, timeframe: Timeframe, opens: list[int]
) -> None:
    # Arrange: opens on the timeframe's grid around two DST changes
    moments = [datetime(2024, 3, 1, tzinfo=UTC) + minute * timedelta(minutes=1) for minute in opens]
    moments = [
        datetime.fromtimestamp(
            int(moment.timestamp())
            // int(timeframe.duration.total_seconds())
            * int(timeframe.duration.total_seconds()),
            UTC,
        )
        for moment in moments
    ]
    microseconds = np.array([to_microseconds(moment) for moment in moments], dtype=np.int64)
    # Act
    vectorised = calendar.bars_expected(microseconds, timeframe).tolist()
    # Assert
    assert vectorised == [calendar.bar_expected(moment, timeframe) for moment in moments]
