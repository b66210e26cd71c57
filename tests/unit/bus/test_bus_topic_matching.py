"""AMQP topic matching: '*' is one word, '#' is zero or more words."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_bus import topic_matches


def reference_match(pattern: str, routing_key: str) -> bool:
    """Match by translating the pattern into a regex over '.'-prefixed words."""
    parts = []
    for word in pattern.split("."):
        if word == "#":
            parts.append(r"(?:\.[^.]*)*")
        elif word == "*":
            parts.append(r"\.[^.]*")
        else:
            parts.append(r"\." + re.escape(word))
    return re.fullmatch("".join(parts), "." + routing_key) is not None


@pytest.mark.parametrize(
    ("pattern", "routing_key", "expected"),
    [
        ("market.bar.#", "market.bar.1h.EURUSD", True),
        ("market.bar.#", "market.bar", True),
        ("market.tick.*", "market.tick.EURUSD", True),
        ("market.tick.*", "market.tick", False),
        ("market.tick.*", "market.tick.EURUSD.extra", False),
        ("#", "anything.at.all", True),
        ("#.EURUSD", "market.bar.1h.EURUSD", True),
        ("#.EURUSD", "market.bar.1h.GBPUSD", False),
        ("order.*", "order.requested", True),
        ("order.requested", "order.approved", False),
        ("*.bar.#", "market.bar.1h.EURUSD", True),
        ("#.#", "a", True),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.x.y.c", False),
    ],
)
def test_topic_pattern_matches_like_rabbitmq(
    pattern: str, routing_key: str, expected: bool
) -> None:
    # Act / Assert
    assert topic_matches(pattern, routing_key) is expected


key_words = st.sampled_from(["a", "b", "ab", "market", ""])
pattern_words = st.one_of(key_words, st.sampled_from(["*", "#"]))


@given(
    pattern=st.lists(pattern_words, min_size=1, max_size=6).map(".".join),
    routing_key=st.lists(key_words, min_size=1, max_size=7).map(".".join),
)
def test_topic_matching_agrees_with_the_reference_regex(pattern: str, routing_key: str) -> None:
    # Act / Assert
    assert topic_matches(pattern, routing_key) is reference_match(pattern, routing_key)


@given(routing_key=st.lists(key_words, min_size=1, max_size=7).map(".".join))
def test_a_key_matches_itself_and_hash(routing_key: str) -> None:
    # Act / Assert
    assert topic_matches(routing_key, routing_key)
    assert topic_matches("#", routing_key)
