"""A throwaway RabbitMQ vhost and users provisioned by broker-setup's code; a fresh database."""

from __future__ import annotations

import os
import secrets
import shutil
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tai_bus.provisioning import (
    BrokerLayout,
    RabbitmqctlAdministrator,
    deprovision,
    provision,
)
from tai_store.database import create_database_if_missing, drop_database_if_exists

AMQP_BASE = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_BASE = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")


@dataclass(frozen=True)
class ProvisionedBroker:
    """A vhost with one user per service, as broker-setup creates them."""

    layout: BrokerLayout
    passwords: dict[str, str]

    def url(self, service: str) -> str:
        """Return the AMQP URL a service (or ``admin``) connects with."""
        base = urllib.parse.urlsplit(AMQP_BASE)
        user = self.layout.user(service)
        credentials = (
            f"{urllib.parse.quote(user, safe='')}:"
            f"{urllib.parse.quote(self.passwords[user], safe='')}"
        )
        netloc = f"{credentials}@{base.hostname}:{base.port or 5672}"
        return f"{base.scheme}://{netloc}/{urllib.parse.quote(self.layout.vhost, safe='')}"


@pytest.fixture(scope="module")
def provisioned_broker() -> Iterator[ProvisionedBroker]:
    """Provision a fresh vhost and users with the production grants; delete them after.

    Module-scoped: provisioning through rabbitmqctl takes seconds; tests use unique queues.
    """
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: cannot provision an isolated vhost")
    tag = uuid.uuid4().hex[:10]
    layout = BrokerLayout(vhost=f"tai-risk-it-{tag}", user_prefix=f"tai-it{tag}-")
    passwords = {user: secrets.token_urlsafe(24) for user in layout.users()}
    administrator = RabbitmqctlAdministrator()
    try:
        provision(administrator, layout, passwords)
        yield ProvisionedBroker(layout, passwords)
    finally:
        deprovision(administrator, layout)


@pytest.fixture
def database_url() -> Iterator[str]:
    """Create a fresh PostgreSQL database and drop it afterwards."""
    url = f"{POSTGRES_BASE.rsplit('/', 1)[0]}/tai_risk_it_{uuid.uuid4().hex[:12]}"
    create_database_if_missing(url)
    try:
        yield url
    finally:
        drop_database_if_exists(url)
