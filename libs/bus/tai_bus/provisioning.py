"""RabbitMQ provisioning: the vhost, one least-privilege user per service, exchanges, policies.

One description of the broker (:func:`build_definitions`) serves twice: rendered without
password hashes it is ``deploy/rabbitmq/definitions.json`` (compose and Kubernetes fill the
hashes in at start from the environment), and with hashes it is imported into a running broker
by ``trading-ai broker-setup`` — through the management HTTP API when it is enabled, otherwise
with ``rabbitmqctl import_definitions`` (definitions on standard input, never on disk).

The security-relevant grants (DESIGN §5):

* only the risk user may publish ``order.approved`` on ``tai.events`` (topic permissions);
* only the execution user may read ``tai.execution.*`` queues, which hold the approvals;
* dead letters are requeued by the broker (``tai.dead-letter.requeue``), so the gateway
  requeues any of them, approvals and commands too, without the right to publish them;
* only the gateway may publish ``control.resume``; ``control.strategy`` comes from the gateway
  and from the optimizer (a promoted parameter set); risk may send halt/flatten (its kill
  switch); besides its alerts the gateway publishes ``model.promoted`` on ``tai.events``
  (promote/rollback from the console and the API), nothing else;
* each service configures only its own ``tai.<service>.*`` queues;
* an outside subscriber (``broker-setup --subscriber NAME``) configures, binds and reads only
  its own ``ext.NAME.*`` queues, binds them to ``tai.events`` only with keys inside its allowed
  topics (never ``order.approved``), publishes nowhere, and reads the history stream
  ``tai.history`` only when it may read every public topic.

Every public event is also kept in the stream ``tai.history`` (retention by age and size, a
policy: ``--history-max-age``/``--history-max-bytes``), so a subscriber can replay from the
start, an offset or a timestamp.

Service queues are declared by the services themselves (their arguments: quorum, single active
consumer, delivery limit); policies put every ``tai.*`` quorum queue under dead-lettering and a
length limit, and the definitions declare the shared exchanges and the dead-letter queue.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess  # nosec B404  # rabbitmqctl only: a fixed argv, never a shell
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from tai_bus.topology import requeue_queue_arguments, topic_matches
from tai_events.topics import (
    CONTROL_EXCHANGE,
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    EVENTS_EXCHANGE,
    HISTORY_STREAM,
    ORDER_APPROVED,
    PUBLIC_TOPICS,
    REQUEUE_QUEUE,
    REQUEUE_ROUTING_KEY,
)

SERVICES = (
    "ingestion",
    "inference",
    "strategy",
    "risk",
    "execution",
    "gateway",
    "notifier",
    "optimizer",
)
"""Every service that gets its own broker user."""
ADMIN = "admin"
RABBITMQ_VERSION = "3.13.7"
"""Broker version the definitions file is written for (its header fields)."""

_ALERTS = r"alert\.[a-z]+"
_NOT_APPROVALS = r"^(?!order\.approved$).*$"
_ORDER_STATES = "new|submitted|partially_filled|filled|cancelled|rejected|expired"
EVENTS_WRITE: dict[str, str] = {
    "ingestion": rf"^(market\.(bar|tick)\..+|{_ALERTS})$",
    "inference": rf"^(ml\.prediction\..+|model\.retraining\..+|{_ALERTS})$",
    "strategy": rf"^(signal\..+|order\.requested|{_ALERTS})$",
    "risk": rf"^(order\.(approved|rejected)|risk\.(state|limits)|{_ALERTS})$",
    "execution": (rf"^(order\.({_ORDER_STATES})|execution\.fill|position\.updated|{_ALERTS})$"),
    # ModelPromoted from the console's promote/rollback, its own refusal alerts
    "gateway": rf"^(model\.promoted|{_ALERTS})$",
    "notifier": "^$",
    "optimizer": rf"^(model\.promoted|research\.run\.[a-z_]+|{_ALERTS})$",
}
"""Routing keys each service may publish on the events exchange."""
CONTROL_WRITE: dict[str, str] = {
    "risk": r"^control\.(halt|flatten)$",
    "gateway": r"^control\.(halt|resume|flatten|strategy)$",
    "optimizer": r"^control\.strategy$",
}
"""Routing keys a service may publish on the control exchange (others: none): exactly the
commands each sends (the gateway: HaltTrading, ResumeTrading, FlattenPositions,
ConfigureStrategy; the optimizer: ConfigureStrategy when it promotes parameters)."""
READS_APPROVALS = frozenset({"execution", "gateway"})
"""Services whose topic permissions include reading ``order.approved`` (execution acts on it,
the gateway shows it); the approvals *queue* is readable by execution alone."""
WRITES_CONTROL_EXCHANGE = frozenset({"risk", "gateway", "optimizer"})
READS_DEAD_LETTERS = frozenset({"gateway"})
SERVICE_USER_LIMITS = {"max-connections": 20, "max-channels": 200}
SUBSCRIBER_USER_LIMITS = {"max-connections": 5, "max-channels": 50}
SUBSCRIBER_QUEUE_PREFIX = "ext"
"""An outside subscriber's queues are ``ext.<name>.<anything>``; its user ``<prefix>ext-<name>``."""
SUBSCRIBER_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
MAXIMUM_SUBSCRIBER_NAME = 32
MAXIMUM_SUBSCRIBER_TOPICS = 32
_TOPIC_WORD = re.compile(r"^[A-Za-z0-9_-]+$")
_BINDING_WORD = r"[^.*#]+"
_RETENTION_AGE = re.compile(r"^[1-9][0-9]*(Y|M|D|h|m|s)$")
SUBSCRIBER_QUEUE_MAX_LENGTH = 1_000_000
SUBSCRIBER_QUEUE_EXPIRES_MS = 7 * 24 * 3600 * 1000
"""An unused subscriber queue is deleted after a week (the stream still has the history)."""


def _escape(name: str) -> str:
    return re.escape(name).replace(r"\-", "-")


class SubscriberError(ValueError):
    """A subscriber's name or topics are not acceptable; the message says which and why."""


def validate_topic(pattern: str) -> str:
    """Return ``pattern`` when an outside subscriber may bind with it; raise SubscriberError.

    Words are letters, digits, ``_`` or ``-``, or ``*``; ``#`` only as the last word (so the
    broker can check any binding key against it); nothing that matches ``order.approved``.
    """
    words = pattern.split(".")
    for position, word in enumerate(words):
        if word == "#":
            if position == len(words) - 1 and position > 0:
                continue
            raise SubscriberError(
                f"topic {pattern!r}: '#' may only end a topic after a word (e.g. market.bar.#)"
            )
        if word != "*" and not _TOPIC_WORD.match(word):
            raise SubscriberError(
                f"topic {pattern!r}: {word!r} is not a word (letters, digits, _ or -) or '*'"
            )
    if topic_matches(pattern, ORDER_APPROVED):
        raise SubscriberError(f"topic {pattern!r} would include {ORDER_APPROVED}")
    return pattern


def binding_key_regex(pattern: str) -> str:
    """Return a regex (unanchored) of the binding keys whose matches all match ``pattern``.

    RabbitMQ checks a binding key's text against the topic permission, not the keys it will
    match: ``market.bar.*.EURUSD`` is allowed under ``market.bar.#``, ``market.#`` is not.
    A literal word must be that word; ``*`` a word or ``*``; a final ``#`` any further words.
    """
    parts: list[str] = []
    for word in validate_topic(pattern).split("."):
        if word == "#":
            parts.append(r"(\.[^.]+)*")
        elif word == "*":
            parts.append(("" if not parts else r"\.") + rf"({_BINDING_WORD}|\*)")
        else:
            parts.append(("" if not parts else r"\.") + _escape(word))
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Subscriber:
    """An outside system reading the public topics: its name and the topics it may bind."""

    name: str
    topics: tuple[str, ...] = PUBLIC_TOPICS

    def __post_init__(self) -> None:
        if len(self.name) > MAXIMUM_SUBSCRIBER_NAME or not SUBSCRIBER_NAME.match(self.name):
            raise SubscriberError(
                f"subscriber name {self.name!r}: lower-case letters and digits, words joined"
                f" by '-', at most {MAXIMUM_SUBSCRIBER_NAME} characters"
            )
        if not self.topics:
            raise SubscriberError(f"subscriber {self.name}: give at least one topic")
        if len(self.topics) > MAXIMUM_SUBSCRIBER_TOPICS:
            raise SubscriberError(
                f"subscriber {self.name}: at most {MAXIMUM_SUBSCRIBER_TOPICS} topics"
            )
        for topic in self.topics:
            validate_topic(topic)
        object.__setattr__(self, "topics", tuple(sorted(set(self.topics))))

    @property
    def reads_history(self) -> bool:
        """Return True when it may read every public topic, hence the history stream too."""
        allowed = [re.compile(binding_key_regex(topic)) for topic in self.topics]
        return all(
            any(pattern.fullmatch(public) for pattern in allowed) for public in PUBLIC_TOPICS
        )

    def queue_prefix(self) -> str:
        """Return the prefix of the queues it may declare (``ext.<name>.``)."""
        return f"{SUBSCRIBER_QUEUE_PREFIX}.{self.name}."


@dataclass(frozen=True, slots=True)
class HistoryRetention:
    """How long, and how much of, the public event history the stream keeps."""

    max_age: str = "7D"
    """RabbitMQ's age format: a number and Y, M, D, h, m or s."""
    max_bytes: int = 5_000_000_000
    segment_bytes: int = 100_000_000

    def __post_init__(self) -> None:
        if not _RETENTION_AGE.match(self.max_age):
            raise ValueError(
                f"history max age {self.max_age!r}: a number followed by Y, M, D, h, m or s"
            )
        if self.max_bytes <= 0 or self.segment_bytes <= 0:
            raise ValueError("history max bytes and segment bytes must be positive")
        if self.segment_bytes > self.max_bytes:
            raise ValueError("a history segment cannot be larger than the whole history")


@dataclass(frozen=True, slots=True)
class BrokerLayout:
    """Where to provision: the vhost, the user-name prefix, the services and subscribers."""

    vhost: str = "tai"
    user_prefix: str = "tai-"
    services: tuple[str, ...] = SERVICES
    subscribers: tuple[Subscriber, ...] = ()
    history: HistoryRetention = field(default_factory=HistoryRetention)

    def user(self, service: str) -> str:
        """Return the broker user of a service (or of ``admin``)."""
        return f"{self.user_prefix}{service}"

    def subscriber_user(self, name: str) -> str:
        """Return the broker user of an outside subscriber (``<prefix>ext-<name>``)."""
        return f"{self.user_prefix}{SUBSCRIBER_QUEUE_PREFIX}-{name}"

    def users(self) -> tuple[str, ...]:
        """Return every user: the operators' admin, one per service, one per subscriber."""
        return (
            self.user(ADMIN),
            *(self.user(service) for service in self.services),
            *(self.subscriber_user(subscriber.name) for subscriber in self.subscribers),
        )


def password_variable(user: str) -> str:
    """Return the environment variable holding a user's password (RABBITMQ_PASSWORD_TAI_RISK)."""
    return "RABBITMQ_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", user).upper()


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Return RabbitMQ's rabbit_password_hashing_sha256 hash: b64(salt || sha256(salt || pw))."""
    salt = secrets.token_bytes(4) if salt is None else salt
    if len(salt) != 4:
        raise ValueError("the salt must be 4 bytes")
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def _permissions(layout: BrokerLayout, service: str) -> dict[str, str]:
    own = rf"tai\.{_escape(service)}\..*"
    write = [r"tai\.events", r"tai\.dead-letter", own]
    read = [r"tai\.events", r"tai\.control", own]
    if service in WRITES_CONTROL_EXCHANGE:
        write.append(r"tai\.control")
    if service in READS_DEAD_LETTERS:
        read.append(r"tai\.dead-letter")
    return {
        "user": layout.user(service),
        "vhost": layout.vhost,
        "configure": f"^{own}$",
        "write": f"^({'|'.join(write)})$",
        "read": f"^({'|'.join(read)})$",
    }


def _subscriber_permissions(layout: BrokerLayout, subscriber: Subscriber) -> dict[str, str]:
    # binding needs write on the queue and read on the exchange; consuming, read on the queue.
    # No exchange but its own could be written: with no 'amq.default' or 'tai.*', it cannot
    # publish anything the system reads.
    own = _escape(subscriber.queue_prefix()) + ".+"
    readable = [r"tai\.events", own]
    if subscriber.reads_history:
        readable.append(_escape(HISTORY_STREAM))
    return {
        "user": layout.subscriber_user(subscriber.name),
        "vhost": layout.vhost,
        "configure": f"^{own}$",
        "write": f"^{own}$",
        "read": f"^({'|'.join(readable)})$",
    }


def _subscriber_topic_permissions(
    layout: BrokerLayout, subscriber: Subscriber
) -> list[dict[str, str]]:
    keys = "|".join(f"({binding_key_regex(topic)})" for topic in subscriber.topics)
    return [
        {
            "user": layout.subscriber_user(subscriber.name),
            "vhost": layout.vhost,
            "exchange": EVENTS_EXCHANGE,
            "write": "^$",
            "read": f"^({keys})$",
        },
        {
            "user": layout.subscriber_user(subscriber.name),
            "vhost": layout.vhost,
            "exchange": CONTROL_EXCHANGE,
            "write": "^$",
            "read": "^$",
        },
    ]


def build_definitions(
    layout: BrokerLayout = BrokerLayout(), password_hashes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the broker definitions; users without a hash get "" (they cannot log in)."""
    hashes = password_hashes or {}
    vhost = layout.vhost
    users: list[dict[str, Any]] = []
    subscriber_users = {layout.subscriber_user(item.name) for item in layout.subscribers}
    for user in layout.users():
        is_admin = user == layout.user(ADMIN)
        limits = SUBSCRIBER_USER_LIMITS if user in subscriber_users else SERVICE_USER_LIMITS
        users.append(
            {
                "name": user,
                "password_hash": hashes.get(user, ""),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"] if is_admin else [],
                "limits": {} if is_admin else dict(limits),
            }
        )
    permissions = [
        {
            "user": layout.user(ADMIN),
            "vhost": vhost,
            "configure": ".*",
            "write": ".*",
            "read": ".*",
        },
        *(_permissions(layout, service) for service in layout.services),
        *(_subscriber_permissions(layout, subscriber) for subscriber in layout.subscribers),
    ]
    topic_permissions = []
    for service in layout.services:
        topic_permissions += [
            {
                "user": layout.user(service),
                "vhost": vhost,
                "exchange": EVENTS_EXCHANGE,
                "write": EVENTS_WRITE.get(service, "^$"),
                "read": ".*" if service in READS_APPROVALS else _NOT_APPROVALS,
            },
            {
                "user": layout.user(service),
                "vhost": vhost,
                "exchange": CONTROL_EXCHANGE,
                "write": CONTROL_WRITE.get(service, "^$"),
                "read": ".*",
            },
        ]
    for subscriber in layout.subscribers:
        topic_permissions += _subscriber_topic_permissions(layout, subscriber)
    exchanges = [
        {
            "name": name,
            "vhost": vhost,
            "type": "topic",
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {},
        }
        for name in (EVENTS_EXCHANGE, CONTROL_EXCHANGE, DEAD_LETTER_EXCHANGE)
    ]
    return {
        "rabbit_version": RABBITMQ_VERSION,
        "rabbitmq_version": RABBITMQ_VERSION,
        "vhosts": [
            {
                "name": vhost,
                "metadata": {
                    "description": "Trading AI Secure",
                    "default_queue_type": "quorum",
                    "tags": [],
                },
            }
        ],
        "users": users,
        "permissions": permissions,
        "topic_permissions": topic_permissions,
        "exchanges": exchanges,
        "queues": [
            {
                "name": DEAD_LETTER_QUEUE,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-queue-type": "quorum"},
            },
            {
                "name": REQUEUE_QUEUE,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": requeue_queue_arguments(),
            },
            {
                "name": HISTORY_STREAM,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                # retention is the tai-history policy's, so that it can change later
                "arguments": {"x-queue-type": "stream"},
            },
        ],
        "bindings": [
            {
                "source": DEAD_LETTER_EXCHANGE,
                "vhost": vhost,
                "destination": DEAD_LETTER_QUEUE,
                "destination_type": "queue",
                "routing_key": "#",
                "arguments": {},
            },
            {
                "source": DEAD_LETTER_EXCHANGE,
                "vhost": vhost,
                "destination": REQUEUE_QUEUE,
                "destination_type": "queue",
                "routing_key": REQUEUE_ROUTING_KEY,
                "arguments": {},
            },
            *(
                {
                    "source": EVENTS_EXCHANGE,
                    "vhost": vhost,
                    "destination": HISTORY_STREAM,
                    "destination_type": "queue",
                    "routing_key": topic,
                    "arguments": {},
                }
                for topic in PUBLIC_TOPICS
            ),
        ],
        "policies": [
            {
                "vhost": vhost,
                "name": "tai-service-queues",
                "pattern": r"^tai\.(?!dead-letter|history$).+",
                "apply-to": "quorum_queues",
                "priority": 0,
                "definition": {
                    "dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                    "dead-letter-strategy": "at-least-once",
                    "delivery-limit": 5,
                    "overflow": "reject-publish",
                    "max-length": 1000000,
                },
            },
            {
                "vhost": vhost,
                "name": "tai-dead-letter-queue",
                "pattern": r"^tai\.dead-letter$",
                "apply-to": "quorum_queues",
                "priority": 1,
                "definition": {"max-length": 1000000, "overflow": "reject-publish"},
            },
            {
                "vhost": vhost,
                "name": "tai-history",
                "pattern": f"^{_escape(HISTORY_STREAM)}$",
                "apply-to": "streams",
                "priority": 2,
                "definition": {
                    "max-age": layout.history.max_age,
                    "max-length-bytes": layout.history.max_bytes,
                    "stream-max-segment-size-bytes": layout.history.segment_bytes,
                },
            },
            {
                # An outside subscriber must never slow the system down: its full queue drops
                # its oldest messages (publishers are never refused) and an abandoned one
                # goes away; the history stream still has every event.
                "vhost": vhost,
                "name": "tai-subscriber-queues",
                "pattern": rf"^{SUBSCRIBER_QUEUE_PREFIX}\.",
                "apply-to": "queues",
                "priority": 0,
                "definition": {
                    "max-length": SUBSCRIBER_QUEUE_MAX_LENGTH,
                    "overflow": "drop-head",
                    "expires": SUBSCRIBER_QUEUE_EXPIRES_MS,
                },
            },
        ],
        "parameters": [],
        "global_parameters": [],
    }


def render_definitions(definitions: Mapping[str, Any]) -> str:
    """Return the definitions as the committed file's text (2-space JSON, final newline).

    The layout matters: deploy/rabbitmq/tai-render-definitions.sh fills each user's hash in
    by line ("name" then "password_hash" on the next line).
    """
    return json.dumps(definitions, indent=2) + "\n"


def write_definitions_file(path: Path, layout: BrokerLayout = BrokerLayout()) -> bool:
    """Write the hash-free definitions file; return True when its content changed."""
    text = render_definitions(build_definitions(layout))
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def _read_secrets_file(path: Path) -> dict[str, str]:
    values = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            name, separator, value = line.partition("=")
            if separator and not name.startswith("#"):
                values[name.strip()] = value.strip()
    return values


def resolve_passwords(
    layout: BrokerLayout, environment: Mapping[str, str], secrets_file: Path
) -> dict[str, str]:
    """Return each user's password: from the environment, else the secrets file, else new.

    New passwords are appended to ``secrets_file`` (created 0600, one ``VARIABLE=value`` per
    line, the variables the services and the render script read), so a re-run is stable.
    """
    stored = _read_secrets_file(secrets_file)
    passwords: dict[str, str] = {}
    generated: dict[str, str] = {}
    for user in layout.users():
        variable = password_variable(user)
        password = environment.get(variable) or stored.get(variable)
        if not password:
            password = secrets.token_urlsafe(32)
            generated[variable] = password
        passwords[user] = password
    if generated:
        secrets_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
            for variable, password in generated.items():
                handle.write(f"{variable}={password}\n")
        os.chmod(secrets_file, 0o600)
    return passwords


def for_server_version(definitions: Mapping[str, Any], version: str) -> dict[str, Any]:
    """Return definitions a broker of ``version`` accepts.

    Policies may target ``quorum_queues`` only from RabbitMQ 3.12; older brokers get ``queues``
    (same patterns: every ``tai.*`` queue is a quorum queue, the services declare them so).
    """
    adapted = json.loads(json.dumps(definitions))
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if numbers < (3, 12):
        for policy in adapted["policies"]:
            if policy["apply-to"] in {"quorum_queues", "classic_queues", "streams"}:
                policy["apply-to"] = "queues"
    return dict(adapted)


class BrokerAdministrator(Protocol):
    """A way to change a running broker's definitions."""

    def server_version(self) -> str:
        """Return the broker's RabbitMQ version."""

    def import_definitions(self, definitions: Mapping[str, Any]) -> None:
        """Create or update everything in ``definitions``."""

    def delete_vhost(self, vhost: str) -> None:
        """Delete a vhost and everything in it."""

    def delete_user(self, user: str) -> None:
        """Delete a user (the broker closes its connections)."""

    def list_users(self) -> list[str]:
        """Return the name of every user."""

    def list_queues(self, vhost: str) -> list[str]:
        """Return the name of every queue of a vhost."""

    def delete_queue(self, vhost: str, queue: str) -> None:
        """Delete a queue and its messages."""


class BrokerAdministrationError(RuntimeError):
    """The broker refused or could not be reached."""


@dataclass(frozen=True, slots=True)
class RabbitmqctlAdministrator:
    """Administer the local node with ``rabbitmqctl`` (needs the node's Erlang cookie)."""

    executable: str = "rabbitmqctl"
    timeout_seconds: float = 120.0

    def _run(self, *arguments: str, stdin: str | None = None) -> str:
        try:
            result = subprocess.run(  # noqa: S603  # nosec B603  # fixed argv, no shell
                [self.executable, "-q", *arguments],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout_seconds,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BrokerAdministrationError(f"rabbitmqctl {arguments[0]}: {error}") from error
        if result.returncode != 0:
            raise BrokerAdministrationError(
                f"rabbitmqctl {arguments[0]} failed: {(result.stderr or result.stdout).strip()}"
            )
        return result.stdout

    def server_version(self) -> str:
        """Return the node's RabbitMQ version."""
        status = json.loads(self._run("status", "--formatter", "json"))
        return str(status["rabbitmq_version"])

    def import_definitions(self, definitions: Mapping[str, Any]) -> None:
        """Import definitions through standard input (hashes never touch the disk)."""
        self._run("import_definitions", "--format", "json", stdin=json.dumps(definitions))

    def delete_vhost(self, vhost: str) -> None:
        """Delete a vhost."""
        self._run("delete_vhost", vhost)

    def delete_user(self, user: str) -> None:
        """Delete a user."""
        self._run("delete_user", user)

    def list_users(self) -> list[str]:
        """Return the name of every user."""
        return [
            str(row["user"]) for row in json.loads(self._run("list_users", "--formatter", "json"))
        ]

    def list_queues(self, vhost: str) -> list[str]:
        """Return the name of every queue of a vhost."""
        rows = json.loads(self._run("list_queues", "-p", vhost, "name", "--formatter", "json"))
        return [str(row["name"]) for row in rows]

    def delete_queue(self, vhost: str, queue: str) -> None:
        """Delete a queue."""
        self._run("delete_queue", "-p", vhost, queue)


_MANAGEMENT_SCHEMES = frozenset({"http", "https"})


def _http_only_opener() -> urllib.request.OpenerDirector:
    """Return an opener that speaks HTTP(S) only, directly, and follows no redirects.

    ``urlopen``'s default opener also reads ``file:``/``ftp:``/``data:`` URLs, goes through
    ``*_proxy`` from the environment and follows redirects with the Basic credentials; this one
    answers any other scheme with "unknown url type" and a redirect with an HTTPError.
    """
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener


@dataclass(frozen=True, slots=True)
class ManagementApiAdministrator:
    """Administer a broker through the management plugin's HTTP API."""

    base_url: str
    username: str
    password: str
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        if urllib.parse.urlsplit(self.base_url).scheme not in _MANAGEMENT_SCHEMES:
            raise ValueError(f"the management URL must be http(s), not {self.base_url!r}")

    def _request(self, method: str, path: str, body: object | None = None) -> bytes:
        data = None if body is None else json.dumps(body).encode("utf-8")
        # http(s) only: checked in __post_init__, and the opener has no other handlers
        request = urllib.request.Request(  # noqa: S310
            self.base_url.rstrip("/") + path, data=data, method=method
        )
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with _http_only_opener().open(request, timeout=self.timeout_seconds) as response:
                return bytes(response.read())
        except (urllib.error.URLError, OSError) as error:
            raise BrokerAdministrationError(f"{method} {path}: {error}") from error

    def available(self) -> bool:
        """Return True when the API answers with these credentials."""
        try:
            self._request("GET", "/api/overview")
        except BrokerAdministrationError:
            return False
        return True

    def server_version(self) -> str:
        """Return the broker's RabbitMQ version."""
        overview = json.loads(self._request("GET", "/api/overview"))
        return str(overview["rabbitmq_version"])

    def import_definitions(self, definitions: Mapping[str, Any]) -> None:
        """POST the definitions."""
        self._request("POST", "/api/definitions", definitions)

    def delete_vhost(self, vhost: str) -> None:
        """Delete a vhost."""
        self._request("DELETE", f"/api/vhosts/{urllib.parse.quote(vhost, safe='')}")

    def delete_user(self, user: str) -> None:
        """Delete a user."""
        self._request("DELETE", f"/api/users/{urllib.parse.quote(user, safe='')}")

    def list_users(self) -> list[str]:
        """Return the name of every user."""
        return [str(row["name"]) for row in json.loads(self._request("GET", "/api/users"))]

    def list_queues(self, vhost: str) -> list[str]:
        """Return the name of every queue of a vhost."""
        path = f"/api/queues/{urllib.parse.quote(vhost, safe='')}?columns=name"
        return [str(row["name"]) for row in json.loads(self._request("GET", path))]

    def delete_queue(self, vhost: str, queue: str) -> None:
        """Delete a queue."""
        quoted = f"{urllib.parse.quote(vhost, safe='')}/{urllib.parse.quote(queue, safe='')}"
        self._request("DELETE", f"/api/queues/{quoted}")


def choose_administrator(
    management_url: str | None, username: str, password: str
) -> BrokerAdministrator:
    """Return the management API when it answers, else rabbitmqctl when it is installed."""
    if management_url and password:
        api = ManagementApiAdministrator(management_url, username, password)
        if api.available():
            return api
    if shutil.which("rabbitmqctl") is not None:
        return RabbitmqctlAdministrator()
    raise BrokerAdministrationError(
        "neither the management API answers nor is rabbitmqctl installed"
    )


def read_layout(path: Path, *, vhost: str = "tai", user_prefix: str = "tai-") -> BrokerLayout:
    """Return the layout with the subscribers and history retention kept in ``path``.

    A missing file means no subscriber and the default retention. A bad entry raises
    ValueError naming the file and the entry.
    """
    if not path.exists():
        return BrokerLayout(vhost=vhost, user_prefix=user_prefix)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        history = HistoryRetention(**data.get("history", {}))
        subscribers = tuple(
            Subscriber(str(entry["name"]), tuple(entry["topics"]))
            for entry in data.get("subscribers", [])
        )
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{path}: {error}") from error
    return BrokerLayout(
        vhost=vhost, user_prefix=user_prefix, subscribers=subscribers, history=history
    )


def render_layout(layout: BrokerLayout) -> str:
    """Return the layout file's text: the history retention and each subscriber's topics."""
    data = {
        "history": {
            "max_age": layout.history.max_age,
            "max_bytes": layout.history.max_bytes,
            "segment_bytes": layout.history.segment_bytes,
        },
        "subscribers": [
            {"name": subscriber.name, "topics": list(subscriber.topics)}
            for subscriber in sorted(layout.subscribers, key=lambda item: item.name)
        ],
    }
    return json.dumps(data, indent=2) + "\n"


def write_layout(path: Path, layout: BrokerLayout) -> bool:
    """Write the layout file; return True when its content changed."""
    text = render_layout(layout)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def with_subscriber(layout: BrokerLayout, subscriber: Subscriber) -> BrokerLayout:
    """Return the layout with ``subscriber`` added (or its topics replaced)."""
    others = tuple(item for item in layout.subscribers if item.name != subscriber.name)
    return replace(layout, subscribers=(*others, subscriber))


def without_subscriber(layout: BrokerLayout, name: str) -> BrokerLayout:
    """Return the layout without subscriber ``name``; raise SubscriberError if it has none."""
    if name not in {item.name for item in layout.subscribers}:
        raise SubscriberError(f"there is no subscriber {name!r}")
    remaining = tuple(item for item in layout.subscribers if item.name != name)
    return replace(layout, subscribers=remaining)


def forget_password(secrets_file: Path, user: str) -> bool:
    """Remove a user's password line from the secrets file; return True if it had one.

    A revoked account's password must not come back if the name is used again.
    """
    if not secrets_file.exists():
        return False
    variable = password_variable(user)
    lines = secrets_file.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if line.partition("=")[0].strip() != variable]
    if len(kept) == len(lines):
        return False
    secrets_file.write_text("".join(kept), encoding="utf-8")
    return True


def revoke_subscriber(
    administrator: BrokerAdministrator, layout: BrokerLayout, name: str
) -> list[str]:
    """Delete a subscriber's user (closing its connections) and its queues; return them.

    ``layout`` is the one the subscriber was provisioned in (its vhost and user prefix).
    """
    user = layout.subscriber_user(name)
    if user in administrator.list_users():
        administrator.delete_user(user)
    prefix = Subscriber(name).queue_prefix()
    deleted = [
        queue for queue in administrator.list_queues(layout.vhost) if queue.startswith(prefix)
    ]
    for queue in deleted:
        administrator.delete_queue(layout.vhost, queue)
    return deleted


def provision(
    administrator: BrokerAdministrator, layout: BrokerLayout, passwords: Mapping[str, str]
) -> dict[str, Any]:
    """Create or update the vhost, users, permissions, exchanges, queues and policies."""
    hashes = {user: hash_password(password) for user, password in passwords.items()}
    missing = set(layout.users()) - set(hashes)
    if missing:
        raise ValueError(f"no password for {sorted(missing)}")
    definitions = for_server_version(
        build_definitions(layout, hashes), administrator.server_version()
    )
    administrator.import_definitions(definitions)
    return definitions


def deprovision(administrator: BrokerAdministrator, layout: BrokerLayout) -> None:
    """Delete the vhost and every user of a layout (throwaway test brokers)."""
    administrator.delete_vhost(layout.vhost)
    # each rabbitmqctl call pays a CLI start-up of seconds: delete the users side by side
    with ThreadPoolExecutor(max_workers=len(layout.users())) as pool:
        list(pool.map(administrator.delete_user, layout.users()))
