"""Live bars: polled from the sources at each bar close, or built from a tick stream.

``LivePoller`` asks the failover sources for each configured timeframe when its bars close.
``StreamFeed`` aggregates a live tick stream with the bar builder and publishes each bar
once, when it closes. When the stream fails (an error, the server cutting it off, or
silence while the market is open) the switch is logged, counted and alerted (once per
outage: the attempts that fail while it is down are logged and counted, not alerted again);
the sources are polled at each bar close meanwhile, and the stream is reconnected with
back-off. A server that refuses the client's protocol is alerted as such (critical, once):
reconnecting cannot help until the client changes, so attempts wait the longest back-off.

No bar is lost or published twice across a switch: every bar goes through one BarPipeline,
whose high-water mark drops a bar already published; a bar the stream saw only part of
(the stream started or came back mid-bar) is never published from the stream, the sources
supply it; and before a stream bar is published, the sources fill any bar missing since the
last one published.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from tai_bus.api import MessageBus
from tai_core.clock import Clock
from tai_events.alerts import AlertRaised, Severity
from tai_events.market import BarClosed, Timeframe
from tai_ingestion.bars import BarBuilder, check_derivable
from tai_ingestion.calendar import TradingCalendar, align, missing_bar_opens
from tai_ingestion.errors import (
    SourceError,
    StreamDisconnectedError,
    StreamProtocolError,
    StreamStalledError,
)
from tai_ingestion.failover import FailoverSource
from tai_ingestion.metrics import IngestionMetrics
from tai_ingestion.pipeline import BarPipeline, BarPoller
from tai_ingestion.sources.base import TickStream
from tai_telemetry.logging import get_logger

Sleep = Callable[[float], Awaitable[None]]
"""Wait this many seconds (``asyncio.sleep``; tests inject a timer they drive)."""


def first_complete_open(started_at: datetime, timeframe: Timeframe) -> datetime:
    """Return the open of the first bar wholly after ``started_at`` (itself when aligned)."""
    opened_at = align(started_at, timeframe)
    return opened_at if opened_at == started_at else opened_at + timeframe.duration


async def sleep_until(moment: datetime, clock: Clock, sleep: Sleep) -> None:
    """Sleep until the clock reads ``moment`` (a timer may wake a little early)."""
    while (remaining := (moment - clock.now()).total_seconds()) > 0:
        await sleep(remaining)


class LivePoller:
    """Poll the sources for each timeframe when its bars close."""

    def __init__(
        self,
        source: FailoverSource,
        pipeline: BarPipeline,
        *,
        symbol: str,
        timeframes: Sequence[Timeframe],
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.timeframes = check_derivable(timeframes)
        self.source_names = source.source_names
        self._clock = clock
        self._sleep = sleep
        self._pollers = {
            timeframe: BarPoller(source, pipeline, symbol=symbol, timeframe=timeframe, clock=clock)
            for timeframe in self.timeframes
        }
        self._log = get_logger("ingestion.poll")

    async def poll(
        self, timeframe: Timeframe, *, before: datetime | None = None
    ) -> list[BarClosed]:
        """Publish the ``timeframe`` bars closed since the last one (opened before ``before``)."""
        try:
            return await self._pollers[timeframe].on_timer(self._clock.now(), before=before)
        except Exception as error:  # a failed poll must not end the live loop
            self._log.error("poll failed", timeframe=timeframe.value, error=str(error))
            return []

    async def run(self, until: datetime | None = None) -> None:
        """Poll each timeframe at each of its bar closes, until ``until`` (or until cancelled)."""
        base = self.timeframes[0]
        while True:
            boundary = align(self._clock.now(), base) + base.duration
            wake = boundary if until is None else min(boundary, until)
            await sleep_until(wake, self._clock, self._sleep)
            if wake == boundary:
                for timeframe in self.timeframes:
                    if align(boundary, timeframe) == boundary:
                        await self.poll(timeframe)
            if until is not None and wake >= until:
                return


class StreamFeed:
    """Bars from a live tick stream, with the polling sources covering while it is down."""

    def __init__(
        self,
        open_stream: Callable[[], TickStream],
        pipeline: BarPipeline,
        *,
        symbol: str,
        timeframes: Sequence[Timeframe],
        fallback: LivePoller | None,
        bus: MessageBus,
        clock: Clock,
        metrics: IngestionMetrics,
        calendar: TradingCalendar | None = None,
        sleep: Sleep = asyncio.sleep,
        grace: timedelta = timedelta(0),
        publish_ticks: bool = True,
        retry: timedelta = timedelta(seconds=5),
        max_retry: timedelta = timedelta(minutes=5),
        idle_timeout: timedelta = timedelta(minutes=2),
    ) -> None:
        self.timeframes = check_derivable(timeframes)
        self._open_stream = open_stream
        self._pipeline = pipeline
        self._symbol = symbol
        self._fallback = fallback
        self._bus = bus
        self._clock = clock
        self._metrics = metrics
        self._calendar = calendar
        self._sleep = sleep
        self._grace = grace
        self._publish_ticks = publish_ticks
        self._retry = retry
        self._max_retry = max_retry
        self._idle_timeout = idle_timeout
        self._publishing = asyncio.Lock()
        self._stream_name = "stream"
        self._complete_from: dict[Timeframe, datetime] = {}
        self._last_tick_at = clock.now()
        self._session_ticks = 0
        self._failed_sessions = 0
        self._down_since: datetime | None = None
        self._alerted_kinds: set[str] = set()
        """The failure kinds already alerted in the current outage."""
        self._log = get_logger("ingestion.stream")

    @property
    def streaming(self) -> bool:
        """Return True while the stream is up (False while the sources cover)."""
        return self._down_since is None

    async def run(self) -> None:
        """Stream until cancelled; poll while the stream is down; reconnect with back-off."""
        retrying = AsyncRetrying(
            wait=self._reconnect_wait,
            retry=retry_if_exception_type(SourceError),
            sleep=self._cover_while_down,
            before_sleep=self._fail_over,
        )
        async for attempt in retrying:
            with attempt:
                await self._stream_session()

    async def _stream_session(self) -> None:
        stream = self._open_stream()
        self._stream_name = stream.name
        builder = BarBuilder(
            self._symbol,
            self.timeframes,
            source=stream.name,
            grace=self._grace,
            metrics=self._metrics,
        )
        started_at = self._clock.now()
        self._complete_from = {tf: first_complete_open(started_at, tf) for tf in self.timeframes}
        self._last_tick_at = started_at
        self._session_ticks = 0
        tasks = [
            asyncio.create_task(self._consume(stream, builder), name="stream-ticks"),
            asyncio.create_task(self._close_on_time(builder), name="stream-timer"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            error = next(iter(done)).exception()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await stream.close()
        if isinstance(error, SourceError):
            raise error
        raise StreamDisconnectedError(stream.name, f"stream failed: {error!r}") from error

    async def _consume(self, stream: TickStream, builder: BarBuilder) -> None:
        async for tick in stream.ticks([self._symbol]):
            self._last_tick_at = self._clock.now()
            self._session_ticks += 1
            bars = builder.on_tick(tick)
            async with self._publishing:
                if self._down_since is not None:
                    await self._restored()
                await self._publish_stream_bars(bars)
                if self._publish_ticks:
                    await self._pipeline.publish_tick(tick)
        raise StreamDisconnectedError(stream.name, "the stream ended")

    async def _close_on_time(self, builder: BarBuilder) -> None:
        base = self.timeframes[0]
        while True:
            now = self._clock.now()
            wake = align(now - self._grace, base) + base.duration + self._grace
            idle_deadline = self._last_tick_at + self._idle_timeout
            if now < idle_deadline < wake:
                wake = idle_deadline
            await sleep_until(wake, self._clock, self._sleep)
            now = self._clock.now()
            bars = builder.on_time(now)
            async with self._publishing:
                await self._publish_stream_bars(bars)
            silence = now - self._last_tick_at
            if silence >= self._idle_timeout and self._market_open(now - silence, now):
                raise StreamStalledError(
                    self._stream_name,
                    f"no tick for {silence.total_seconds():.0f}s while the market is open",
                )

    def _market_open(self, since: datetime, now: datetime) -> bool:
        if self._calendar is None:
            return True
        return all(
            self._calendar.bar_expected(align(moment, Timeframe.M1), Timeframe.M1)
            for moment in (since, now)
        )

    async def _publish_stream_bars(self, bars: list[BarClosed]) -> None:
        for bar in bars:
            if bar.opened_at < self._complete_from[bar.timeframe]:
                # The stream saw only part of this bar: the sources supply the whole one.
                self._log.info(
                    "partial stream bar left to the sources",
                    timeframe=bar.timeframe.value,
                    opened_at=bar.opened_at.isoformat(),
                )
                await self._fill_from_sources(bar.timeframe)
                continue
            last = await self._pipeline.last_published(bar.symbol, bar.timeframe)
            if last is None or self._bars_expected(last.closed_at, bar.opened_at, bar.timeframe):
                await self._fill_from_sources(bar.timeframe, before=bar.opened_at)
            await self._pipeline.publish([bar])

    def _bars_expected(self, start: datetime, end: datetime, timeframe: Timeframe) -> bool:
        if start >= end:
            return False
        if self._calendar is None:
            return True
        return bool(missing_bar_opens(self._calendar, timeframe, start, end, set()))

    async def _fill_from_sources(
        self, timeframe: Timeframe, *, before: datetime | None = None
    ) -> None:
        if self._fallback is not None:
            await self._fallback.poll(timeframe, before=before)

    def _reconnect_wait(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, StreamProtocolError):
            # Refused for the client's protocol: only a new client helps; try seldom.
            return self._max_retry.total_seconds()
        # Back off over consecutive sessions that delivered nothing; a session that
        # streamed ticks before failing starts the back-off again.
        self._failed_sessions = 1 if self._session_ticks else self._failed_sessions + 1
        wait = self._retry * 2.0 ** (self._failed_sessions - 1)
        return min(wait, self._max_retry).total_seconds()

    async def _cover_while_down(self, seconds: float) -> None:
        until = self._clock.now() + timedelta(seconds=seconds)
        if self._fallback is not None:
            await self._fallback.run(until=until)
        else:
            await sleep_until(until, self._clock, self._sleep)

    async def _fail_over(self, retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        reason = error.reason if isinstance(error, SourceError) else "error"
        following = self._fallback.source_names[0] if self._fallback else "none"
        wait = retry_state.upcoming_sleep
        if self._down_since is None:
            self._down_since = self._clock.now()
            self._alerted_kinds.clear()
        self._metrics.source_errors.labels(source=self._stream_name, reason=reason).inc()
        self._metrics.failovers.labels(
            from_source=self._stream_name, to_source=following, reason=reason
        ).inc()
        self._log.warning(
            "stream failover",
            from_source=self._stream_name,
            to_source=following,
            reason=reason,
            error=str(error),
            reconnect_in_seconds=wait,
            symbol=self._symbol,
        )
        details = {
            "from_source": self._stream_name,
            "to_source": following,
            "reason": reason,
            "symbol": self._symbol,
        }
        if isinstance(error, StreamProtocolError):
            if "protocol" not in self._alerted_kinds:
                self._alerted_kinds.add("protocol")
                await self._alert(
                    Severity.CRITICAL,
                    "stream_protocol_refused",
                    f"{error}; {following} covers by polling, the stream is retried every "
                    f"{wait:.0f}s (pin the client to a protocol IG accepts: requirements.in)",
                    details,
                )
            return
        if not self._alerted_kinds:
            self._alerted_kinds.add("failover")
            await self._alert(
                Severity.WARNING,
                "stream_failover",
                f"{self._stream_name} failed ({reason}): {error}; {following} covers, "
                f"reconnecting in {wait:.0f}s",
                details,
            )

    async def _restored(self) -> None:
        down_for = self._clock.now() - (self._down_since or self._clock.now())
        self._down_since = None
        self._log.info(
            "stream restored", source=self._stream_name, down_seconds=down_for.total_seconds()
        )
        await self._alert(
            Severity.INFO,
            "stream_restored",
            f"{self._stream_name} streams {self._symbol} again after "
            f"{down_for.total_seconds():.0f}s",
            {"source": self._stream_name, "symbol": self._symbol},
        )

    async def _alert(
        self, severity: Severity, code: str, message: str, details: dict[str, str]
    ) -> None:
        try:
            await self._bus.publish(
                AlertRaised(
                    severity=severity,
                    source="ingestion",
                    code=code,
                    message=message[:2000],
                    details=details,
                    raised_at=self._clock.now(),
                )
            )
        except Exception as error:  # an alert that cannot go out must not stop the data
            self._log.error("alert not published", code=code, error=str(error))
