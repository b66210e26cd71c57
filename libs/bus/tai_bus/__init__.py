"""Trading AI Secure message bus: one interface, an aio-pika transport and an in-memory one."""

from tai_bus.amqp import AmqpBus
from tai_bus.api import (
    DEFAULT_DELIVERY_LIMIT,
    DEFAULT_PREFETCH,
    ORIGINAL_EXCHANGE_HEADER,
    STANDARD_EXCHANGES,
    Binding,
    BusClosedError,
    DeadLetter,
    DeadLetterHandler,
    DeadLetterSubscription,
    Handler,
    MessageBus,
    PermanentHandlerError,
    Subscription,
    UnknownExchangeError,
)
from tai_bus.factory import MEMORY_URL, create_bus
from tai_bus.memory import InMemoryBus
from tai_bus.topology import topic_matches

__all__ = [
    "DEFAULT_DELIVERY_LIMIT",
    "DEFAULT_PREFETCH",
    "MEMORY_URL",
    "ORIGINAL_EXCHANGE_HEADER",
    "STANDARD_EXCHANGES",
    "AmqpBus",
    "Binding",
    "BusClosedError",
    "DeadLetter",
    "DeadLetterHandler",
    "DeadLetterSubscription",
    "Handler",
    "InMemoryBus",
    "MessageBus",
    "PermanentHandlerError",
    "Subscription",
    "UnknownExchangeError",
    "create_bus",
    "topic_matches",
]
