"""Routing rules and queue arguments shared by both transports."""

from __future__ import annotations

from functools import lru_cache

from tai_bus.api import Subscription
from tai_events.topics import DEAD_LETTER_EXCHANGE


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Return whether a routing key matches an AMQP topic pattern.

    Words are separated by dots; ``*`` matches exactly one word and ``#`` zero or more.
    """
    return _matches(tuple(pattern.split(".")), tuple(routing_key.split(".")))


@lru_cache(maxsize=4096)
def _matches(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    # Memoised recursion over (pattern suffix, key suffix): linear in their product even
    # for patterns with several '#', which a naive backtracking match is not.
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_matches(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    if head in ("*", words[0]):
        return _matches(rest, words[1:])
    return False


def quorum_queue_arguments(subscription: Subscription) -> dict[str, object]:
    """Return the arguments of a consumed queue: quorum, delivery limit, safe dead-lettering."""
    arguments: dict[str, object] = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-delivery-limit": subscription.delivery_limit,
        # at-least-once dead-lettering needs reject-publish: the broker then keeps a
        # dead letter until the dead-letter queue has confirmed it.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    if subscription.single_active_consumer:
        arguments["x-single-active-consumer"] = True
    return arguments


def dead_letter_queue_arguments() -> dict[str, object]:
    """Return the arguments of a queue on the dead-letter exchange (no further dead-lettering)."""
    return {"x-queue-type": "quorum"}


def requeue_queue_arguments() -> dict[str, object]:
    """Return the arguments of the requeue queue: expire at once into the default exchange.

    At-least-once dead-lettering keeps a message until its target queue has it.
    """
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": 0,
        "x-dead-letter-exchange": "",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
