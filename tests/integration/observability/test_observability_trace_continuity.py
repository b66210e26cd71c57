"""One trace runs across the four services: bar → order request → approval → fill.

The services run on the in-memory bus with SQLite and an in-memory span exporter; approvals and
fills travel through the transactional outbox, so the traceparent must survive being stored in
a row and relayed later.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tai_events import FillExecuted
from tai_telemetry.metrics import Telemetry
from tests.fuzz.pipeline_harness import memory_pipeline

pytestmark = pytest.mark.integration

# The consumer queues a bar's consequences pass through, in causal order.
CHAIN = ("tai.strategy.bars", "tai.risk.orders", "tai.execution.approvals", "tai.risk.fills")


def _trace_id(traceparent: str | None) -> int:
    assert traceparent is not None, "message published without a traceparent"
    return int(traceparent.split("-")[1], 16)


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """Return the names of a span's ancestors, nearest first."""
    names = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        ancestor = by_id[parent.span_id]
        names.append(ancestor.name)
        parent = ancestor.parent
    return names


def _consumer_span(spans: list[ReadableSpan], queue: str, message_id: str) -> ReadableSpan:
    [span] = [
        span
        for span in spans
        if span.name == f"{queue} process"
        and span.attributes is not None
        and span.attributes.get("messaging.message.id") == message_id
    ]
    return span


async def test_approval_and_fill_spans_carry_the_trace_ids_of_the_bars_that_caused_them(
    tmp_path: Path,
) -> None:
    # Arrange
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(service="trace-test", tracer_provider=provider)

    # Act: replay 300 bars of EURUSD through ingestion → strategy → risk → execution
    async with memory_pipeline(tmp_path, bars=300, telemetry=telemetry) as pipeline:
        published = await pipeline.replay()
        approvals = {
            envelope.message.order_id: envelope  # type: ignore[attr-defined]
            for envelope in pipeline.recorded.approvals
        }
        # the fills of approved orders (a bracket leg's fill has no approval of its own)
        fills = [
            fill
            for fill in pipeline.recorded.fills
            if fill.message.order_id in approvals  # type: ignore[attr-defined]
        ]
    spans = list(exporter.get_finished_spans())
    by_id = {span.context.span_id: span for span in spans}

    # Assert: every bar started its own trace (a root producer span)
    bar_roots = {
        span.context.trace_id: span
        for span in spans
        if span.kind is SpanKind.PRODUCER and span.name.startswith("market.bar.")
    }
    assert published == 300
    # the 300 hourly bars, and the daily bars ingestion builds from them (their own roots)
    hourly = [span for span in bar_roots.values() if span.name.startswith("market.bar.1h.")]
    assert len(hourly) == published
    assert all(span.parent is None for span in bar_roots.values())
    assert len(fills) >= 2
    for fill in fills:
        assert isinstance(fill.message, FillExecuted)
        # the approval of the filled order continues the trace of the bar that signalled it:
        # bar → strategy → risk → execution, every hop a child of the one before
        approval = approvals[fill.message.order_id]
        signal_trace = _trace_id(approval.headers.traceparent)
        assert signal_trace in bar_roots
        accepted = _consumer_span(spans, CHAIN[2], approval.headers.message_id)
        assert accepted.context.trace_id == signal_trace
        assert _ancestors(accepted, by_id) == [
            f"{CHAIN[1]} process",
            f"{CHAIN[0]} process",
            bar_roots[signal_trace].name,
        ]
        # the paper broker fills on the next bar, but the fill continues the trace of the
        # approval that authorised it: one trace from the signalling bar to every consumer of
        # the fill (risk's ledger here)
        assert _trace_id(fill.headers.traceparent) == signal_trace
        consumed = _consumer_span(spans, CHAIN[3], fill.headers.message_id)
        assert consumed.context.trace_id == signal_trace
        assert _ancestors(consumed, by_id) == [
            f"{CHAIN[2]} process",
            f"{CHAIN[1]} process",
            f"{CHAIN[0]} process",
            bar_roots[signal_trace].name,
        ]
