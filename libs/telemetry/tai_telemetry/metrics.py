"""Per-service telemetry: a Prometheus registry of its own and a tracer."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

HANDLER_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


@dataclass(frozen=True)
class BusMetrics:
    """Messages consumed, published, failed, dead-lettered and redelivered; handler latency."""

    consumed: Counter
    published: Counter
    failed: Counter
    dead_lettered: Counter
    handler_latency: Histogram
    lag: Histogram
    redelivered: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> BusMetrics:
        """Register the bus metrics in a registry."""
        return cls(
            consumed=Counter(
                "tai_messages_consumed",
                "Messages handled successfully",
                ["queue", "type"],
                registry=registry,
            ),
            published=Counter(
                "tai_messages_published",
                "Messages published and confirmed",
                ["exchange", "type"],
                registry=registry,
            ),
            failed=Counter(
                "tai_messages_failed",
                "Handler failures (the message is redelivered)",
                ["queue", "type"],
                registry=registry,
            ),
            dead_lettered=Counter(
                "tai_messages_dead_lettered",
                "Messages sent to the dead-letter exchange",
                ["queue", "reason"],
                registry=registry,
            ),
            handler_latency=Histogram(
                "tai_handler_latency_seconds",
                "Time spent in a message handler",
                ["queue", "type"],
                buckets=HANDLER_LATENCY_BUCKETS,
                registry=registry,
            ),
            lag=Histogram(
                "tai_message_lag_seconds",
                "Queue lag: from a message's occurred_at to the start of its handling",
                ["queue"],
                buckets=(*HANDLER_LATENCY_BUCKETS, 5.0, 10.0, 30.0, 60.0, 300.0),
                registry=registry,
            ),
            redelivered=Counter(
                "tai_messages_redelivered",
                "Deliveries of a message this queue had delivered before (crash, nack, reconnect)",
                ["queue"],
                registry=registry,
            ),
        )


@dataclass
class Telemetry:
    """What one service (or the embedded process) reports with; made in its composition root."""

    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    tracer_provider: TracerProvider | None = None
    bus: BusMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.bus = BusMetrics.create(self.registry)
        if self.tracer_provider is None:
            self.tracer_provider = TracerProvider()

    def tracer(self) -> trace.Tracer:
        """Return this service's tracer."""
        if self.tracer_provider is None:
            raise RuntimeError("telemetry has no tracer provider")
        return self.tracer_provider.get_tracer(f"tai.{self.service}")

    def render_metrics(self) -> bytes:
        """Return the Prometheus text exposition of this service's registry."""
        return generate_latest(self.registry)
