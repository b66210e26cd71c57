"""OpenTelemetry context carried in AMQP headers (W3C traceparent)."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


def inject_traceparent(context: otel_context.Context | None = None) -> str | None:
    """Return the W3C traceparent of the current (or given) context, if a span is active."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier.get("traceparent")


def extract_context(headers: Mapping[str, object]) -> otel_context.Context:
    """Return the context a message's traceparent/tracestate headers describe."""
    carrier = {
        key: str(value)
        for key, value in headers.items()
        if key in ("traceparent", "tracestate") and value is not None
    }
    return _PROPAGATOR.extract(carrier)
