"""RabbitMQ provisioning: the vhost, one least-privilege user per service, exchanges, policies.

One description of the broker (:func:`build_definitions`) serves twice: rendered without
password hashes it is ``deploy/rabbitmq/definitions.json`` (compose and Kubernetes fill the
hashes in at start from the environment), and with hashes it is imported into a running broker
by ``trading-ai broker-setup`` — through the management HTTP API when it is enabled, otherwise
with ``rabbitmqctl import_definitions`` (definitions on standard input, never on disk).

The security-relevant grants (DESIGN §5):

* only the risk user may publish ``order.approved`` on ``tai.events`` (topic permissions);
* only the execution user may read ``tai.execution.*`` queues, which hold the approvals;
* only the gateway may publish ``control.resume``; ``control.strategy`` comes from the gateway
  and from the optimizer (a promoted parameter set); risk may send halt/flatten (its kill
  switch); besides its alerts the gateway publishes ``model.promoted`` on ``tai.events``
  (promote/rollback from the console and the API), nothing else;
* each service configures only its own ``tai.<service>.*`` queues.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tai_events.topics import (
    CONTROL_EXCHANGE,
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    EVENTS_EXCHANGE,
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
    "risk": rf"^(order\.(approved|rejected)|risk\.state|{_ALERTS})$",
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


def _escape(name: str) -> str:
    return re.escape(name).replace(r"\-", "-")


@dataclass(frozen=True, slots=True)
class BrokerLayout:
    """Where to provision: the vhost, the user-name prefix and the services."""

    vhost: str = "tai"
    user_prefix: str = "tai-"
    services: tuple[str, ...] = SERVICES

    def user(self, service: str) -> str:
        """Return the broker user of a service (or of ``admin``)."""
        return f"{self.user_prefix}{service}"

    def users(self) -> tuple[str, ...]:
        """Return every user: the operators' admin first, then one per service."""
        return (self.user(ADMIN), *(self.user(service) for service in self.services))


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


def build_definitions(
    layout: BrokerLayout = BrokerLayout(), password_hashes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the broker definitions; users without a hash get "" (they cannot log in)."""
    hashes = password_hashes or {}
    vhost = layout.vhost
    users: list[dict[str, Any]] = []
    for user in layout.users():
        is_admin = user == layout.user(ADMIN)
        users.append(
            {
                "name": user,
                "password_hash": hashes.get(user, ""),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"] if is_admin else [],
                "limits": {} if is_admin else dict(SERVICE_USER_LIMITS),
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
            }
        ],
        "bindings": [
            {
                "source": DEAD_LETTER_EXCHANGE,
                "vhost": vhost,
                "destination": DEAD_LETTER_QUEUE,
                "destination_type": "queue",
                "routing_key": "#",
                "arguments": {},
            }
        ],
        "policies": [
            {
                "vhost": vhost,
                "name": "tai-service-queues",
                "pattern": r"^tai\.(?!dead-letter$).+",
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
        """Delete a user."""


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
