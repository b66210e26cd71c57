"""Bar builder: boundaries, publish once, late ticks, and consistent derivation (properties)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tai_events.market import BarClosed, TickReceived, Timeframe
from tai_ingestion.bars import BarBuilder, aggregate
from tai_ingestion.calendar import align
from tai_ingestion.metrics import IngestionMetrics
from tai_telemetry.metrics import Telemetry

T0 = datetime(2024, 1, 8, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def tick(at: datetime, price: float, volume: float = 1.0) -> TickReceived:
    return TickReceived(
        symbol="EURUSD", quoted_at=at, bid=price, ask=price, volume=volume, source="test"
    )


def test_boundaries_are_utc_aligned_and_daily_bars_open_at_midnight() -> None:
    moment = datetime(2024, 1, 8, 13, 47, 12, tzinfo=UTC)
    assert align(moment, Timeframe.M5) == datetime(2024, 1, 8, 13, 45, tzinfo=UTC)
    assert align(moment, Timeframe.H4) == datetime(2024, 1, 8, 12, tzinfo=UTC)
    assert align(moment, Timeframe.D1) == datetime(2024, 1, 8, tzinfo=UTC)


def test_bar_is_published_once_on_the_first_tick_of_the_next_period() -> None:
    builder = BarBuilder("EURUSD", [Timeframe.M1], source="test")
    assert builder.on_tick(tick(T0 + timedelta(seconds=5), 1.10)) == []
    assert builder.on_tick(tick(T0 + timedelta(seconds=40), 1.12)) == []
    closed = builder.on_tick(tick(T0 + MINUTE, 1.11))
    assert [
        (bar.opened_at, bar.open, bar.high, bar.low, bar.close, bar.volume) for bar in closed
    ] == [(T0, 1.10, 1.12, 1.10, 1.12, 2.0)]
    assert builder.on_time(T0 + 2 * MINUTE - timedelta(seconds=1)) == []
    assert [bar.opened_at for bar in builder.on_time(T0 + 2 * MINUTE)] == [T0 + MINUTE]
    assert builder.on_time(T0 + 10 * MINUTE) == []


def test_late_tick_is_dropped_and_counted(metrics: IngestionMetrics) -> None:
    builder = BarBuilder("EURUSD", [Timeframe.M1], source="test", metrics=metrics)
    builder.on_tick(tick(T0, 1.1))
    builder.on_tick(tick(T0 + MINUTE, 1.2))
    assert builder.on_tick(tick(T0 + timedelta(seconds=59), 9.9)) == []
    assert builder.late_ticks_dropped == 1
    assert metrics.late_ticks.labels(symbol="EURUSD", outcome="dropped")._value.get() == 1
    assert builder.flush()[0].high == 1.2


def test_late_tick_within_grace_amends_its_bar() -> None:
    builder = BarBuilder("EURUSD", [Timeframe.M1], source="test", grace=timedelta(seconds=5))
    builder.on_tick(tick(T0, 1.1))
    assert builder.on_tick(tick(T0 + MINUTE + timedelta(seconds=2), 1.2)) == []
    assert builder.on_tick(tick(T0 + timedelta(seconds=59), 1.3)) == []
    closed = builder.on_time(T0 + MINUTE + timedelta(seconds=5))
    assert [(bar.opened_at, bar.high, bar.close) for bar in closed] == [(T0, 1.3, 1.3)]
    assert builder.late_ticks_amended == 1


def test_higher_timeframe_closes_with_its_last_lower_bar() -> None:
    builder = BarBuilder("EURUSD", [Timeframe.M5, Timeframe.M1], source="test")
    for minute in range(5):
        builder.on_tick(tick(T0 + minute * MINUTE, 1.1 + minute / 100))
    closed = builder.on_time(T0 + 5 * MINUTE)
    assert [(bar.timeframe, bar.opened_at) for bar in closed] == [
        (Timeframe.M1, T0 + 4 * MINUTE),
        (Timeframe.M5, T0),
    ]


def test_every_timeframe_is_derived_from_one_minute_bars_up_to_the_day() -> None:
    builder = BarBuilder("EURUSD", list(Timeframe), source="test")
    builder.on_tick(tick(T0 + timedelta(hours=5), 1.1))
    closed = builder.on_time(T0 + timedelta(days=1))
    assert [bar.timeframe for bar in closed] == list(Timeframe)
    assert {bar.close for bar in closed} == {1.1}


def test_builder_without_timeframes_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BarBuilder("EURUSD", [], source="test")


def _key(bars: list[BarClosed]) -> list[tuple[object, ...]]:
    return [(b.timeframe, b.opened_at, b.open, b.high, b.low, b.close) for b in bars]


def _one_minute_bars(offsets: list[int], closes: list[float]) -> list[BarClosed]:
    minutes = sorted(set(offsets))
    return [
        BarClosed(
            symbol="EURUSD",
            timeframe=Timeframe.M1,
            opened_at=T0 + m * MINUTE,
            closed_at=T0 + (m + 1) * MINUTE,
            open=closes[i % len(closes)],
            high=closes[i % len(closes)] + 0.01,
            low=closes[i % len(closes)] - 0.01,
            close=closes[i % len(closes)],
            volume=float(i % 7),
            source="test",
        )
        for i, m in enumerate(minutes)
    ]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=200),
    st.lists(st.floats(min_value=1.0, max_value=2.0), min_size=1, max_size=50),
)
def test_aggregating_1m_to_5m_to_1h_equals_1m_to_1h(
    offsets: list[int], closes: list[float]
) -> None:
    minute_bars = _one_minute_bars(offsets, closes)
    direct = aggregate(minute_bars, Timeframe.H1)
    staged = aggregate(aggregate(minute_bars, Timeframe.M5), Timeframe.H1)
    assert _key(staged) == _key(direct)
    assert [b.volume for b in staged] == pytest.approx([b.volume for b in direct])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3600 * 3), st.floats(min_value=1.0, max_value=2.0)
        ),
        min_size=1,
        max_size=200,
    )
)
def test_ticks_to_1m_to_5m_equals_ticks_to_5m(raw_ticks: list[tuple[int, float]]) -> None:
    ticks = [tick(T0 + timedelta(seconds=s), p) for s, p in sorted(raw_ticks, key=lambda t: t[0])]
    layered = BarBuilder("EURUSD", [Timeframe.M1, Timeframe.M5], source="test")
    direct = BarBuilder("EURUSD", [Timeframe.M5], source="test")
    layered_bars = [b for t in ticks for b in layered.on_tick(t)] + layered.flush()
    direct_bars = [b for t in ticks for b in direct.on_tick(t)] + direct.flush()
    five = [b for b in layered_bars if b.timeframe is Timeframe.M5]
    assert _key(five) == _key(direct_bars)
    assert [b.volume for b in five] == pytest.approx([b.volume for b in direct_bars])
    one = [b for b in layered_bars if b.timeframe is Timeframe.M1]
    assert len({b.opened_at for b in one}) == len(one)  # each bar published once


def test_published_bar_records_market_data_freshness(telemetry: Telemetry) -> None:
    # Arrange
    metrics = IngestionMetrics.create(telemetry.registry)
    opened_at = datetime(2024, 1, 2, 9, tzinfo=UTC)
    bar = BarClosed(
        symbol="EURUSD",
        timeframe=Timeframe.H1,
        opened_at=opened_at,
        closed_at=opened_at + timedelta(hours=1),
        open=1.1,
        high=1.2,
        low=1.0,
        close=1.15,
        volume=10.0,
        source="test",
    )
    # Act
    metrics.record_published(bar)
    # Assert
    labels = {"symbol": "EURUSD", "timeframe": "1h"}
    assert (
        telemetry.registry.get_sample_value("tai_market_data_last_timestamp_seconds", labels)
        == bar.closed_at.timestamp()
    )
    assert (
        telemetry.registry.get_sample_value(
            "tai_ingestion_bars_total", {**labels, "source": "test"}
        )
        == 1.0
    )
