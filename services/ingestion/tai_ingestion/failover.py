"""Failover across sources in priority order, with validation as the last line of defence.

A source that raises (error, time-out, rate limit, malformed payload) or whose answer fails
validation is skipped for a cool-down (a rate limit: until it lifts, if the source says when)
and the next one answers; a source that cannot serve this request (unsupported instrument,
timeframe, range or endpoint) is skipped without resting, as other requests may suit it.
Each switch is logged, counted (``tai_ingestion_failovers``) and raised as an
``AlertRaised`` on the bus.

A series is never mixed: a source whose bars do not have the instrument's price basis (as
traded, regular hours: tai_ingestion.instruments) is never asked for it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_events.alerts import AlertRaised, Severity
from tai_events.market import BarClosed, Timeframe
from tai_ingestion.errors import (
    InvalidDataError,
    RateLimitedError,
    SourceError,
    UnsupportedRequestError,
)
from tai_ingestion.instruments import InstrumentMap, convention
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.models import RawBar
from tai_ingestion.sources.base import MarketDataSource
from tai_ingestion.validation import ValidationReport, Validator
from tai_telemetry.logging import get_logger


class AllSourcesFailedError(SourceError):
    """No source could answer."""

    reason = "all_sources_failed"


@dataclass(frozen=True, slots=True)
class SourcedBars:
    """Validated bars, the source that gave them, and the validation report."""

    source: str
    bars: list[BarClosed]
    report: ValidationReport


class FailoverSource:
    """Ask sources in priority order until one gives valid data."""

    def __init__(
        self,
        sources: Sequence[MarketDataSource],
        *,
        validator: Validator,
        bus: MessageBus,
        clock: Clock,
        metrics: IngestionMetrics,
        instruments: InstrumentMap | None = None,
        cooldown: timedelta = timedelta(minutes=1),
        max_rejected_fraction: float = 0.5,
    ) -> None:
        if not sources:
            raise ValueError("at least one source is needed")
        self._sources = list(sources)
        self._instruments = instruments or InstrumentMap.with_overrides()
        self._validator = validator
        self._bus = bus
        self._clock = clock
        self._metrics = metrics
        self._cooldown = cooldown
        self._max_rejected_fraction = max_rejected_fraction
        self._resting_until: dict[str, datetime] = {}
        self._mismatch_logged: set[tuple[str, str]] = set()
        self._log = get_logger("ingestion.failover")

    @property
    def source_names(self) -> list[str]:
        """Return the sources in priority order."""
        return [source.name for source in self._sources]

    async def fetch_history(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> SourcedBars:
        """Return validated bars opened in [start, end) from the first source that can."""
        return await self._ask(symbol, timeframe, start, end, previous=None, polling=False)

    async def poll_recent(
        self, symbol: str, timeframe: Timeframe, previous: BarClosed | None, since: datetime
    ) -> SourcedBars:
        """Return validated closed bars opened at or after ``since`` (after ``previous``)."""
        return await self._ask(symbol, timeframe, since, None, previous=previous, polling=True)

    async def _ask(
        self,
        symbol: str,
        timeframe: Timeframe,
        start: datetime,
        end: datetime | None,
        *,
        previous: BarClosed | None,
        polling: bool,
    ) -> SourcedBars:
        now = self._clock.now()
        failed: list[tuple[str, SourceError]] = []
        candidates = [
            source
            for source in self._matching(symbol)
            if self._resting_until.get(source.name, now) <= now
        ]
        for index, source in enumerate(candidates):
            try:
                rows = await self._call(
                    source, symbol, timeframe, start, end=end, now=now, polling=polling
                )
                if not rows and not polling:
                    raise InvalidDataError(source.name, "empty answer for a history request")
                result = self._validate(source.name, rows, symbol, timeframe, previous)
            except SourceError as error:
                failed.append((source.name, error))
                self._rest(source.name, error, now)
                following = candidates[index + 1].name if index + 1 < len(candidates) else None
                await self._report_failure(source.name, following, error, symbol)
                continue
            return result
        message = "; ".join(f"{name}: {error}" for name, error in failed) or "all sources resting"
        await self._alert(
            Severity.CRITICAL,
            "sources_exhausted",
            f"no source could serve {symbol} {timeframe.value}: {message}"[:2000],
            {"symbol": symbol, "timeframe": timeframe.value},
        )
        raise AllSourcesFailedError("failover", message)

    def _matching(self, symbol: str) -> list[MarketDataSource]:
        """Return the sources whose bars of ``symbol`` have its convention's price basis."""
        if symbol not in self._instruments:
            return list(self._sources)  # the sources themselves refuse an unknown symbol
        instrument = self._instruments.get(symbol)
        wanted = convention(instrument)
        matching = []
        for source in self._sources:
            basis = source.price_basis(instrument)
            if basis == wanted:
                matching.append(source)
            elif (source.name, symbol) not in self._mismatch_logged:
                self._mismatch_logged.add((source.name, symbol))
                self._log.warning(
                    "source skipped: other price basis",
                    source=source.name,
                    symbol=symbol,
                    basis=basis.describe(),
                    wanted=wanted.describe(),
                )
        return matching

    async def _call(
        self,
        source: MarketDataSource,
        symbol: str,
        timeframe: Timeframe,
        start: datetime,
        *,
        end: datetime | None,
        now: datetime,
        polling: bool,
    ) -> list[RawBar]:
        started = time.perf_counter()
        try:
            if polling:
                return await source.poll_recent(symbol, timeframe, start, now)
            return await source.fetch_history(symbol, timeframe, start, end or now)
        except SourceError:
            raise
        except (TimeoutError, OSError) as error:
            raise SourceError(source.name, f"unexpected failure: {error!r}") from error
        finally:
            self._metrics.source_latency.labels(source=source.name, operation="fetch").observe(
                time.perf_counter() - started
            )

    def _validate(
        self,
        source: str,
        rows: list[RawBar],
        symbol: str,
        timeframe: Timeframe,
        previous: BarClosed | None,
    ) -> SourcedBars:
        result = self._validator.validate(
            rows, symbol=symbol, timeframe=timeframe, source=source, previous=previous
        )
        rejected = result.report.rejected
        if rows and rejected / len(rows) > self._max_rejected_fraction:
            raise InvalidDataError(
                source,
                f"{rejected} of {len(rows)} rows rejected: {result.report.rejected_by_rule()}",
            )
        return SourcedBars(source=source, bars=result.bars, report=result.report)

    def _rest(self, name: str, error: SourceError, now: datetime) -> None:
        if isinstance(error, UnsupportedRequestError):
            return  # this request does not suit the source; others may
        rest = self._cooldown
        if isinstance(error, RateLimitedError) and error.retry_after_seconds:
            rest = max(rest, timedelta(seconds=error.retry_after_seconds))
        self._resting_until[name] = now + rest

    async def _report_failure(
        self, failed: str, following: str | None, error: SourceError, symbol: str
    ) -> None:
        self._metrics.source_errors.labels(source=failed, reason=error.reason).inc()
        if following is None:
            return
        self._metrics.failovers.labels(
            from_source=failed, to_source=following, reason=error.reason
        ).inc()
        self._log.warning(
            "source failover",
            from_source=failed,
            to_source=following,
            reason=error.reason,
            error=str(error),
            symbol=symbol,
        )
        await self._alert(
            Severity.WARNING,
            "source_failover",
            f"{failed} failed ({error.reason}): {error}; {following} takes over"[:2000],
            {
                "from_source": failed,
                "to_source": following,
                "reason": error.reason,
                "symbol": symbol,
            },
        )

    async def _alert(
        self, severity: Severity, code: str, message: str, details: dict[str, str]
    ) -> None:
        await self._bus.publish(
            AlertRaised(
                severity=severity,
                source="ingestion",
                code=code,
                message=message,
                details=details,
                raised_at=self._clock.now(),
            )
        )
