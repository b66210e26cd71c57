"""Trading AI Secure telemetry: JSON logs, Prometheus metrics, OpenTelemetry tracing."""

from tai_telemetry.logging import configure_logging, get_logger
from tai_telemetry.metrics import BusMetrics, Telemetry
from tai_telemetry.tracing import extract_context, inject_traceparent

__all__ = [
    "BusMetrics",
    "Telemetry",
    "configure_logging",
    "extract_context",
    "get_logger",
    "inject_traceparent",
]
