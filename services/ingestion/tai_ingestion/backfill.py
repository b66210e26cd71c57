"""Backfill: fetch only the bars the store lacks, validate them and upsert them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from tai_events.market import Timeframe
from tai_ingestion.calendar import TradingCalendar, missing_bar_opens
from tai_ingestion.failover import FailoverSource
from tai_store.database import Store

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open time range [start, end)."""

    start: datetime
    end: datetime


def missing_spans(
    missing: list[datetime], timeframe: Timeframe, *, max_bars_per_span: int = 5000
) -> list[Span]:
    """Merge missing bar opens into contiguous spans (one request each, bounded in size)."""
    spans: list[Span] = []
    count = 0
    for opened_at in missing:
        closes = opened_at + timeframe.duration
        if spans and spans[-1].end == opened_at and count < max_bars_per_span:
            spans[-1] = Span(spans[-1].start, closes)
            count += 1
        else:
            spans.append(Span(opened_at, closes))
            count = 1
    return spans


@dataclass
class BackfillReport:
    """What a backfill fetched and stored, per source, and what validation said."""

    spans_fetched: int = 0
    bars_stored: int = 0
    bars_already_stored: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    rejected_by_rule: dict[str, int] = field(default_factory=dict)


class Backfiller:
    """Fill a symbol's history in the store from a (failover) source."""

    def __init__(self, source: FailoverSource, store: Store, calendar: TradingCalendar) -> None:
        self._source = source
        self._store = store
        self._calendar = calendar

    async def plan(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> tuple[list[Span], int]:
        """Return the spans to fetch (bars the calendar expects and the store lacks)."""
        async with self._store.transaction() as unit:
            stored = await unit.ohlcv.range(symbol, timeframe, start, end)
        present = {bar.opened_at for bar in stored}
        missing = missing_bar_opens(self._calendar, timeframe, start, end, present)
        return missing_spans(missing, timeframe), len(present)

    async def run(
        self,
        symbol: str,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        progress: Progress | None = None,
    ) -> BackfillReport:
        """Fetch each missing span, validate and upsert it; report progress per span."""
        spans, already = await self.plan(symbol, timeframe, start, end)
        report = BackfillReport(bars_already_stored=already)
        for index, span in enumerate(spans, start=1):
            sourced = await self._source.fetch_history(symbol, timeframe, span.start, span.end)
            if sourced.bars:
                async with self._store.transaction() as unit:
                    await unit.ohlcv.upsert_many(sourced.bars)
            report.spans_fetched += 1
            report.bars_stored += len(sourced.bars)
            report.by_source[sourced.source] = report.by_source.get(sourced.source, 0) + len(
                sourced.bars
            )
            for rule, count in sourced.report.rejected_by_rule().items():
                report.rejected_by_rule[rule] = report.rejected_by_rule.get(rule, 0) + count
            if progress is not None:
                progress(index, len(spans))
        return report
