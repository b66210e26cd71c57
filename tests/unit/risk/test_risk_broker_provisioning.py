"""Broker provisioning: the definitions file is generated, least privilege holds, secrets stay."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tai_bus.provisioning import (
    BrokerLayout,
    build_definitions,
    for_server_version,
    hash_password,
    password_variable,
    provision,
    read_layout,
    render_definitions,
    resolve_passwords,
)
from tests.factories import REPOSITORY_ROOT

DEFINITIONS_FILE = REPOSITORY_ROOT / "deploy" / "rabbitmq" / "definitions.json"
LAYOUT_FILE = REPOSITORY_ROOT / "deploy" / "rabbitmq" / "layout.json"


def test_the_committed_definitions_file_is_the_generated_one() -> None:
    # regenerate with: trading-ai broker-setup --no-apply (subscribers come from layout.json)
    expected = render_definitions(build_definitions(read_layout(LAYOUT_FILE)))
    assert DEFINITIONS_FILE.read_text(encoding="utf-8") == expected


def _publishers(definitions: Mapping[str, Any], exchange: str, routing_key: str) -> set[str]:
    return {
        entry["user"]
        for entry in definitions["topic_permissions"]
        if entry["exchange"] == exchange and re.match(entry["write"], routing_key)
    }


def test_only_the_risk_user_may_publish_approvals() -> None:
    definitions = build_definitions(BrokerLayout(vhost="v", user_prefix="x-"))
    assert _publishers(definitions, "tai.events", "order.approved") == {"x-risk"}
    assert _publishers(definitions, "tai.events", "order.requested") == {"x-strategy"}
    assert _publishers(definitions, "tai.control", "control.resume") == {"x-gateway"}
    assert _publishers(definitions, "tai.control", "control.halt") == {"x-risk", "x-gateway"}


def test_only_the_execution_user_may_read_the_approvals_queue() -> None:
    definitions = build_definitions()
    readers = {
        entry["user"]
        for entry in definitions["permissions"]
        if re.match(entry["read"], "tai.execution.approvals")
    }
    assert readers == {"tai-admin", "tai-execution"}
    configurers = {
        entry["user"]
        for entry in definitions["permissions"]
        if re.match(entry["configure"], "tai.risk.orders")
    }
    assert configurers == {"tai-admin", "tai-risk"}


def test_the_hash_free_file_has_no_password_hash() -> None:
    assert all(user["password_hash"] == "" for user in build_definitions()["users"])


def test_password_hash_is_rabbitmq_salted_sha256() -> None:
    encoded = hash_password("s3cret", salt=b"\x01\x02\x03\x04")
    raw = base64.b64decode(encoded)
    assert raw[:4] == b"\x01\x02\x03\x04"
    assert raw[4:] == hashlib.sha256(b"\x01\x02\x03\x04s3cret").digest()


def test_password_variables_match_the_render_script() -> None:
    assert password_variable("tai-risk") == "RABBITMQ_PASSWORD_TAI_RISK"
    assert password_variable("tai-admin") == "RABBITMQ_PASSWORD_TAI_ADMIN"


def test_missing_passwords_are_generated_into_a_private_file_and_reused(tmp_path: Path) -> None:
    # Arrange
    layout = BrokerLayout()
    secrets_file = tmp_path / "secrets" / "rabbitmq.env"
    environment = {"RABBITMQ_PASSWORD_TAI_RISK": "from-the-environment"}
    # Act
    first = resolve_passwords(layout, environment, secrets_file)
    second = resolve_passwords(layout, {}, secrets_file)
    # Assert
    assert first["tai-risk"] == "from-the-environment"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert "from-the-environment" not in secrets_file.read_text()
    assert {user: first[user] for user in first if user != "tai-risk"} == {
        user: second[user] for user in second if user != "tai-risk"
    }
    assert len({first[user] for user in layout.users()}) == len(layout.users())


def test_old_brokers_get_policies_for_all_queues() -> None:
    definitions = build_definitions()
    old = for_server_version(definitions, "3.10.8")
    new = for_server_version(definitions, "3.13.7")
    assert {policy["apply-to"] for policy in old["policies"]} == {"queues"}
    assert new == json.loads(json.dumps(definitions))


class _RecordingAdministrator:
    def __init__(self) -> None:
        self.imported: list[Mapping[str, Any]] = []

    def server_version(self) -> str:
        return "3.13.7"

    def import_definitions(self, definitions: Mapping[str, Any]) -> None:
        self.imported.append(definitions)

    def delete_vhost(self, vhost: str) -> None:
        raise AssertionError(vhost)

    def delete_user(self, user: str) -> None:
        raise AssertionError(user)


def test_provision_imports_hashes_of_the_given_passwords() -> None:
    # Arrange
    layout = BrokerLayout(vhost="v", user_prefix="p-")
    administrator = _RecordingAdministrator()
    passwords = {user: f"pw-{user}" for user in layout.users()}
    # Act
    provision(administrator, layout, passwords)
    # Assert
    (imported,) = administrator.imported
    for user in imported["users"]:
        raw = base64.b64decode(user["password_hash"])
        assert hashlib.sha256(raw[:4] + f"pw-{user['name']}".encode()).digest() == raw[4:]


def test_provision_refuses_a_user_without_password() -> None:
    with pytest.raises(ValueError, match="no password"):
        provision(_RecordingAdministrator(), BrokerLayout(), {"tai-admin": "x"})
