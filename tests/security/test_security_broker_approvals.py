"""On the real RabbitMQ with broker-setup's users: no service but risk may publish approvals.

tests/integration/risk/test_risk_broker_security.py proves it for the strategy user; this runs
the same attack as every other non-risk service user, so a loosened grant for any one fails.
"""

from __future__ import annotations

import aiormq
import pytest

from tai_bus.provisioning import SERVICES
from tai_core.signing import ApprovalSigner, generate_private_key_pem
from tai_events.topics import ORDER_APPROVED
from tests.integration.risk.conftest import (
    ProvisionedBroker,
    provisioned_broker,  # noqa: F401 - the fixture, shared with the risk broker tests
)
from tests.integration.risk.test_risk_broker_security import _approval, _publish

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NON_RISK_USERS = [service for service in SERVICES if service != "risk"]


@pytest.mark.parametrize("service", NON_RISK_USERS)
async def test_the_broker_refuses_an_approval_from_every_non_risk_user(
    provisioned_broker: ProvisionedBroker,  # noqa: F811 - the imported fixture
    service: str,
) -> None:
    approval = _approval(ApprovalSigner.from_pem(generate_private_key_pem()), f"ord-{service}")
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match="ACCESS_REFUSED"):
        await _publish(provisioned_broker.url(service), ORDER_APPROVED, approval)
