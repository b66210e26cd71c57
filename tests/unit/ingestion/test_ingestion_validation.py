"""Validator rules, policies, report and metrics; properties over generated series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tai_events.market import Timeframe
from tai_ingestion.calendar import EquityCalendar, ForexCalendar
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.models import RawBar
from tai_ingestion.validation import Policy, Rule, ValidationConfig, Validator

T0 = datetime(2024, 1, 8, 0, 0, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)


def row(index: int, at: datetime | str, close: float = 1.1, **prices: object) -> RawBar:
    values: dict[str, object] = {"open": close, "high": close + 0.01, "low": close - 0.01}
    values.update(prices)
    return RawBar(index, at, values["open"], values["high"], values["low"], close, 10.0)


def validate(rows: list[RawBar], **config: object) -> tuple[list[datetime], dict[str, int]]:
    result = Validator(ValidationConfig.model_validate(config)).validate(
        rows, symbol="EURUSD", timeframe=Timeframe.H1, source="test"
    )
    return [bar.opened_at for bar in result.bars], result.report.rejected_by_rule()


def test_naive_and_foreign_times_are_normalised_to_utc() -> None:
    paris = datetime(2024, 1, 8, 2, 0).astimezone().replace(tzinfo=None)
    rows = [row(1, "2024-01-08 00:00:00"), row(2, "2024-01-08T02:00:00+01:00"), row(3, paris)]
    result = Validator(ValidationConfig(naive_timezone="UTC")).validate(
        rows[:2], symbol="EURUSD", timeframe=Timeframe.H1, source="test"
    )
    assert [bar.opened_at for bar in result.bars] == [T0, T0 + HOUR]
    assert all(bar.opened_at.tzinfo is UTC for bar in result.bars)


def test_each_bad_row_is_rejected_with_its_rule() -> None:
    rows = [
        row(1, T0),
        row(2, "not a time"),
        row(3, T0 + HOUR, open="abc"),
        row(4, T0 + 2 * HOUR, close=float("nan")),
        row(5, T0 + 3 * HOUR, close=-1.0, low=-1.5),
        row(6, T0 + 4 * HOUR, high=1.0),
        row(7, T0 + 4 * HOUR),
        row(8, T0 + 4 * HOUR),
        row(9, T0 + 3 * HOUR),
    ]
    accepted, rejected = validate(rows)
    assert accepted == [T0, T0 + 4 * HOUR]
    assert rejected == {
        "timestamp": 1,
        "schema": 1,
        "non_finite": 1,
        "non_positive": 1,
        "ohlc_inconsistent": 1,
        "duplicate": 1,
        "non_monotonic": 1,
    }


def test_repair_policies_fix_ohlc_order_and_duplicates() -> None:
    rows = [row(1, T0 + HOUR), row(2, T0, high=1.0), row(3, T0 + HOUR, close=1.2)]
    result = Validator(
        ValidationConfig(
            policies={
                Rule.OHLC_INCONSISTENT: Policy.REPAIR,
                Rule.NON_MONOTONIC: Policy.REPAIR,
                Rule.DUPLICATE: Policy.REPAIR,
            }
        )
    ).validate(rows, symbol="EURUSD", timeframe=Timeframe.H1, source="test")
    assert [bar.opened_at for bar in result.bars] == [T0, T0 + HOUR]
    assert result.bars[0].high == pytest.approx(1.1)
    assert result.bars[1].close == 1.2  # the last duplicate wins
    assert result.report.repaired_by_rule() == {
        "ohlc_inconsistent": 1,
        "non_monotonic": 2,
        "duplicate": 1,
    }
    assert result.report.rejected == 0


def test_outlier_is_flagged_by_default_and_rejected_when_configured() -> None:
    rows = [row(1, T0, 1.10), row(2, T0 + HOUR, 1.60, high=1.61), row(3, T0 + 2 * HOUR, 1.11)]
    flagged = Validator().validate(rows, symbol="EURUSD", timeframe=Timeframe.H1, source="t")
    assert len(flagged.bars) == 3
    assert flagged.report.flagged_by_rule() == {"outlier": 2}
    rejected = Validator(ValidationConfig(policies={Rule.OUTLIER: Policy.REJECT})).validate(
        rows, symbol="EURUSD", timeframe=Timeframe.H1, source="t"
    )
    assert [bar.close for bar in rejected.bars] == [1.10, 1.11]
    assert rejected.report.rejected_by_rule() == {"outlier": 1}


def test_z_score_outlier_detects_a_jump_relative_to_recent_volatility() -> None:
    closes = [1.1 + 0.0001 * (index % 3) for index in range(40)] + [1.13]
    rows = [row(index, T0 + index * HOUR, close) for index, close in enumerate(closes)]
    result = Validator(
        ValidationConfig(outlier_max_return=None, outlier_max_z_score=8.0, check_gaps=False)
    ).validate(rows, symbol="EURUSD", timeframe=Timeframe.H1, source="t")
    assert result.report.flagged_by_rule() == {"outlier": 1}


def test_fx_weekend_is_not_a_gap_but_a_missing_weekday_hour_is() -> None:
    friday_21 = datetime(2024, 1, 12, 21, tzinfo=UTC)
    sunday_22 = datetime(2024, 1, 14, 22, tzinfo=UTC)
    rows = [
        row(1, friday_21 - HOUR),
        row(2, friday_21),
        row(3, sunday_22),
        row(4, sunday_22 + 2 * HOUR),
    ]
    result = Validator(calendar=ForexCalendar()).validate(
        rows, symbol="EURUSD", timeframe=Timeframe.H1, source="t"
    )
    assert result.report.gaps == [sunday_22 + HOUR]
    assert result.report.flagged_by_rule() == {"gap": 1}


def test_equity_session_follows_new_york_time() -> None:
    calendar = EquityCalendar()
    assert calendar.is_open(datetime(2024, 1, 8, 14, 30, tzinfo=UTC))  # 09:30 EST
    assert not calendar.is_open(datetime(2024, 1, 8, 14, 29, tzinfo=UTC))
    assert calendar.is_open(datetime(2024, 7, 8, 13, 30, tzinfo=UTC))  # 09:30 EDT
    assert not calendar.bar_expected(datetime(2024, 1, 13, tzinfo=UTC), Timeframe.D1)


def test_policy_a_rule_cannot_apply_is_refused() -> None:
    with pytest.raises(ValueError, match="allows only"):
        ValidationConfig(policies={Rule.NON_FINITE: Policy.REPAIR})


def test_rejections_are_counted_by_rule_in_metrics(metrics: IngestionMetrics) -> None:
    Validator(metrics=metrics).validate(
        [row(1, T0), row(2, T0), row(3, "bad")],
        symbol="EURUSD",
        timeframe=Timeframe.H1,
        source="t",
    )
    assert metrics.rows_rejected.labels(rule="duplicate")._value.get() == 1
    assert metrics.rows_rejected.labels(rule="timestamp")._value.get() == 1


def test_repaired_and_flagged_rows_are_counted_by_rule_in_metrics(
    metrics: IngestionMetrics,
) -> None:
    # Arrange: a duplicate to repair and an outlier to flag
    rows = [row(1, T0, 1.10), row(2, T0, 1.10), row(3, T0 + HOUR, 1.60, high=1.61)]
    validator = Validator(
        ValidationConfig(policies={Rule.DUPLICATE: Policy.REPAIR}), metrics=metrics
    )

    # Act
    result = validator.validate(rows, symbol="EURUSD", timeframe=Timeframe.H1, source="t")

    # Assert: the report and the metrics agree, rule by rule
    assert result.report.repaired_by_rule() == {"duplicate": 1}
    assert metrics.rows_repaired.labels(rule="duplicate")._value.get() == 1
    assert result.report.flagged_by_rule() == {"outlier": 1}
    assert metrics.rows_flagged.labels(rule="outlier")._value.get() == 1


prices = st.floats(min_value=0.5, max_value=2.0, allow_nan=False)


@st.composite
def series(draw: st.DrawFn) -> list[RawBar]:
    closes = draw(st.lists(prices, min_size=1, max_size=40))
    return [row(index, T0 + index * HOUR, close) for index, close in enumerate(closes)]


@settings(max_examples=60, deadline=None)
@given(series())
def test_valid_series_passes_unchanged(rows: list[RawBar]) -> None:
    result = Validator(ValidationConfig(outlier_max_return=None)).validate(
        rows, symbol="EURUSD", timeframe=Timeframe.H1, source="t"
    )
    assert [bar.close for bar in result.bars] == [raw.close for raw in rows]
    assert result.report.issues == []


@settings(max_examples=60, deadline=None)
@given(series(), st.randoms(use_true_random=False))
def test_every_row_is_accepted_or_reported_and_output_is_strictly_increasing(
    rows: list[RawBar], shuffler: object
) -> None:
    shuffled = list(rows) + list(rows[: len(rows) // 2])
    shuffler.shuffle(shuffled)  # type: ignore[attr-defined]
    result = Validator(ValidationConfig(outlier_max_return=None)).validate(
        shuffled, symbol="EURUSD", timeframe=Timeframe.H1, source="t"
    )
    times = [bar.opened_at for bar in result.bars]
    assert times == sorted(set(times))
    assert len(result.bars) + result.report.rejected == len(shuffled)
