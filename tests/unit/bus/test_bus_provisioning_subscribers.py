"""Outside subscribers' grants and the history stream, as broker-setup writes them."""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_bus.provisioning import (
    BrokerLayout,
    HistoryRetention,
    Subscriber,
    SubscriberError,
    binding_key_regex,
    build_definitions,
    for_server_version,
    forget_password,
    read_layout,
    render_layout,
    resolve_passwords,
    revoke_subscriber,
    with_subscriber,
    without_subscriber,
)
from tai_bus.topology import topic_matches
from tai_events.topics import HISTORY_STREAM, ORDER_APPROVED, PUBLIC_TOPICS, ROUTING_KEY_PATTERNS

LAYOUT = BrokerLayout(
    vhost="v",
    user_prefix="p-",
    subscribers=(
        Subscriber("acme"),
        Subscriber("quant-desk", ("market.bar.#", "execution.fill", "position.updated")),
    ),
)


def _entry(entries: list[dict[str, Any]], user: str, **match: str) -> dict[str, Any]:
    (found,) = [
        entry
        for entry in entries
        if entry["user"] == user and all(entry[key] == value for key, value in match.items())
    ]
    return found


def _allows(regex: str, name: str) -> bool:
    # RabbitMQ matches permissions with re:run, i.e. a search: the regexes carry ^...$
    return re.search(regex, name) is not None


def test_a_subscriber_declares_binds_and_reads_only_its_own_queues() -> None:
    # Act
    permissions = _entry(build_definitions(LAYOUT)["permissions"], "p-ext-quant-desk")
    # Assert
    for queue in ("ext.quant-desk.bars", "ext.quant-desk.fills"):
        assert _allows(permissions["configure"], queue)
        assert _allows(permissions["write"], queue)  # queue.bind needs write on the queue
        assert _allows(permissions["read"], queue)
    for other in ("ext.acme.bars", "tai.risk.orders", "tai.execution.approvals", "ext.quant-desk"):
        assert not _allows(permissions["configure"], other)
        assert not _allows(permissions["read"], other)
    for exchange in ("tai.events", "tai.control", "tai.dead-letter", "amq.default", "amq.topic"):
        assert not _allows(permissions["write"], exchange)  # publishes nowhere
    assert _allows(permissions["read"], "tai.events")  # may bind to the events exchange
    assert not _allows(permissions["read"], "tai.control")


def test_a_subscriber_binds_only_keys_inside_its_topics_and_never_approvals() -> None:
    # Act
    events = _entry(
        build_definitions(LAYOUT)["topic_permissions"], "p-ext-quant-desk", exchange="tai.events"
    )
    # Assert
    assert events["write"] == "^$"
    for key in ("market.bar.#", "market.bar.1h.EURUSD", "market.bar.*.GBPUSD", "execution.fill"):
        assert _allows(events["read"], key), key
    for key in ("#", "market.#", "market.tick.EURUSD", "order.approved", "order.*", "execution.#"):
        assert not _allows(events["read"], key), key


def test_the_default_subscriber_reads_every_public_topic_and_the_history() -> None:
    # Act
    definitions = build_definitions(LAYOUT)
    events = _entry(definitions["topic_permissions"], "p-ext-acme", exchange="tai.events")
    permissions = _entry(definitions["permissions"], "p-ext-acme")
    restricted = _entry(definitions["permissions"], "p-ext-quant-desk")
    # Assert
    assert all(_allows(events["read"], topic) for topic in PUBLIC_TOPICS)
    assert not _allows(events["read"], ORDER_APPROVED)
    assert not _allows(events["read"], "order.#")
    assert _allows(permissions["read"], HISTORY_STREAM)
    assert not _allows(restricted["read"], HISTORY_STREAM)  # the stream has every topic


def test_public_topics_cover_every_event_but_approvals() -> None:
    # Arrange: one concrete routing key per event type
    keys = {
        name: re.sub(r"\{[a-z]+\}", "x", pattern)
        for name, pattern in ROUTING_KEY_PATTERNS.items()
        if not pattern.startswith("control.")
    }
    keys["OrderStatusChanged"] = "order.partially_filled"
    # Act
    covered = {
        name for name, key in keys.items() if any(topic_matches(t, key) for t in PUBLIC_TOPICS)
    }
    # Assert
    assert covered == set(keys) - {"OrderApproved"}


@given(
    st.lists(
        st.sampled_from(["order", "approved", "market", "bar", "*", "#", "x", "requested"]),
        min_size=1,
        max_size=4,
    )
)
def test_no_accepted_topic_and_no_binding_key_it_allows_can_match_approvals(
    words: list[str],
) -> None:
    pattern = ".".join(words)
    try:
        regex = re.compile(binding_key_regex(pattern))
    except SubscriberError:
        return
    # the pattern itself, and any binding key it allows, must not route order.approved
    assert not topic_matches(pattern, ORDER_APPROVED)
    for candidate in (pattern, "order.approved", "order.*", "order.#", "#", "*.approved"):
        if regex.fullmatch(candidate):
            assert not topic_matches(candidate, ORDER_APPROVED), (pattern, candidate)


@pytest.mark.parametrize(
    ("name", "topics", "message"),
    [
        ("Acme", (), "lower-case"),
        ("acme;drop", (), "lower-case"),
        ("acme", ("#",), "may only end a topic"),
        ("acme", ("order.*",), "order.approved"),
        ("acme", ("market..bar",), "is not a word"),
        ("acme", ("market.#.EURUSD",), "may only end a topic"),
    ],
)
def test_a_bad_subscriber_is_refused_with_the_reason(
    name: str, topics: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SubscriberError, match=re.escape(message)):
        Subscriber(name, topics) if topics else Subscriber(name)


def test_the_history_stream_is_bound_to_every_public_topic_with_a_retention_policy() -> None:
    # Arrange
    layout = BrokerLayout(history=HistoryRetention(max_age="30D", max_bytes=10**10))
    # Act
    definitions = build_definitions(layout)
    old = for_server_version(definitions, "3.10.8")
    # Assert
    (stream,) = [queue for queue in definitions["queues"] if queue["name"] == HISTORY_STREAM]
    assert stream["arguments"] == {"x-queue-type": "stream"}
    bound = {
        b["routing_key"] for b in definitions["bindings"] if b["destination"] == HISTORY_STREAM
    }
    assert bound == set(PUBLIC_TOPICS)
    (policy,) = [item for item in definitions["policies"] if item["name"] == "tai-history"]
    assert policy["definition"]["max-age"] == "30D"
    assert policy["definition"]["max-length-bytes"] == 10**10
    service_policy = next(p for p in definitions["policies"] if p["name"] == "tai-service-queues")
    assert not re.search(service_policy["pattern"], HISTORY_STREAM)
    assert {p["apply-to"] for p in old["policies"]} == {"queues"}


@pytest.mark.parametrize("age", ["7", "D", "0D", "7 D", "7d"])
def test_a_bad_history_age_is_refused(age: str) -> None:
    with pytest.raises(ValueError, match="history max age"):
        HistoryRetention(max_age=age)


def test_the_layout_file_round_trips_and_a_missing_one_means_defaults(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "layout.json"
    path.write_text(render_layout(LAYOUT), encoding="utf-8")
    # Act
    loaded = read_layout(path, vhost="v", user_prefix="p-")
    # Assert
    assert sorted(loaded.subscribers, key=lambda item: item.name) == list(LAYOUT.subscribers)
    assert read_layout(tmp_path / "absent.json") == BrokerLayout()


def test_a_bad_layout_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "layout.json"
    path.write_text('{"subscribers": [{"name": "acme", "topics": ["#"]}]}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"layout\.json"):
        read_layout(path)


def test_adding_replaces_a_subscriber_and_removing_an_unknown_one_is_refused() -> None:
    # Act
    changed = with_subscriber(LAYOUT, Subscriber("acme", ("alert.#",)))
    removed = without_subscriber(changed, "acme")
    # Assert
    assert [item.topics for item in changed.subscribers if item.name == "acme"] == [("alert.#",)]
    assert [item.name for item in removed.subscribers] == ["quant-desk"]
    with pytest.raises(SubscriberError, match="no subscriber 'nobody'"):
        without_subscriber(LAYOUT, "nobody")


def test_a_subscriber_gets_a_generated_password_that_is_forgotten_on_removal(
    tmp_path: Path,
) -> None:
    # Arrange
    secrets_file = tmp_path / "rabbitmq.env"
    # Act
    passwords = resolve_passwords(LAYOUT, {}, secrets_file)
    forgotten = forget_password(secrets_file, "p-ext-acme")
    # Assert
    assert passwords["p-ext-acme"]
    assert forgotten
    text = secrets_file.read_text()
    assert "RABBITMQ_PASSWORD_P_EXT_ACME=" not in text
    assert "RABBITMQ_PASSWORD_P_EXT_QUANT_DESK=" in text
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


class _Broker:
    def __init__(self, users: list[str], queues: list[str]) -> None:
        self.users, self.queues = users, queues

    def server_version(self) -> str:
        return "3.13.7"

    def import_definitions(self, definitions: Mapping[str, Any]) -> None:
        raise AssertionError("not expected")

    def delete_vhost(self, vhost: str) -> None:
        raise AssertionError(vhost)

    def delete_user(self, user: str) -> None:
        self.users.remove(user)

    def list_users(self) -> list[str]:
        return list(self.users)

    def list_queues(self, vhost: str) -> list[str]:
        return list(self.queues)

    def delete_queue(self, vhost: str, queue: str) -> None:
        self.queues.remove(queue)


def test_revoking_deletes_the_user_and_only_its_own_queues() -> None:
    # Arrange
    broker = _Broker(
        ["p-ext-acme", "p-risk"], ["ext.acme.bars", "ext.acme.fills", "ext.acmex.a", "tai.risk.x"]
    )
    # Act
    deleted = revoke_subscriber(broker, LAYOUT, "acme")
    # Assert
    assert deleted == ["ext.acme.bars", "ext.acme.fills"]
    assert broker.users == ["p-risk"]
    assert broker.queues == ["ext.acmex.a", "tai.risk.x"]
