"""Trace context flows from a publisher, through a handler, into what the handler publishes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import FakeClock
from tai_events import Envelope, Message, TickReceived
from tai_events.topics import market_tick
from tai_telemetry import Telemetry


@pytest.mark.parametrize("deterministic", [True, False])
async def test_message_published_by_a_handler_continues_the_publishers_trace(
    tick: Callable[..., TickReceived], clock: FakeClock, deterministic: bool
) -> None:
    # Arrange
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry("tester", tracer_provider=provider)
    bus = InMemoryBus("tester", clock=clock, telemetry=telemetry, deterministic=deterministic)
    downstream: list[Envelope[Message]] = []

    async def relay(envelope: Envelope[Message]) -> None:
        await bus.publish(tick("GBPUSD"), cause=envelope.headers)

    async def record(envelope: Envelope[Message]) -> None:
        downstream.append(envelope)

    await bus.subscribe(Subscription("q.relay", [Binding(market_tick("EURUSD"))], relay))
    await bus.subscribe(Subscription("q.record", [Binding(market_tick("GBPUSD"))], record))
    await bus.start()
    # Act
    with telemetry.tracer().start_as_current_span("ingest") as publisher_span:
        first = await bus.publish(tick("EURUSD"))
    await bus.drain()
    await bus.close()
    # Assert
    publisher_context = publisher_span.get_span_context()
    trace_id = format(publisher_context.trace_id, "032x")
    [relayed] = downstream
    assert first.traceparent is not None
    assert first.traceparent.split("-")[1] == trace_id
    assert relayed.headers.traceparent is not None
    assert relayed.headers.traceparent.split("-")[1] == trace_id
    spans = {span.name: span for span in exporter.get_finished_spans()}
    relay_span = spans["q.relay process"]
    assert relay_span.kind is SpanKind.CONSUMER
    assert relay_span.parent is not None
    assert relay_span.parent.span_id == publisher_context.span_id
    # The relayed message names the relay's span as its parent, not the publisher's.
    assert relayed.headers.traceparent.split("-")[2] == format(relay_span.context.span_id, "016x")
    assert spans["q.record process"].context.trace_id == publisher_context.trace_id


async def test_without_an_active_span_the_cause_traceparent_is_carried_over(
    tick: Callable[..., TickReceived], clock: FakeClock
) -> None:
    # Arrange
    bus = InMemoryBus("tester", clock=clock, deterministic=True)
    await bus.start()
    cause_traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    cause = (await bus.publish(tick())).model_copy(update={"traceparent": cause_traceparent})
    # Act
    sent = await bus.publish(tick(), cause=cause)
    # Assert
    assert sent.traceparent == cause_traceparent
    await bus.close()
