"""The execution service dealing through the IG adapter against the local IG stub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import FakeClock
from tai_core.signing import ApprovalSigner, generate_private_key_pem, public_key_pem
from tai_events import AlertRaised, Message, OrderApproved
from tai_events.codec import Envelope
from tai_events.orders import OrderState, OrderType, Side
from tai_execution.app import ExecutionApp, create_app
from tai_execution.config import ExecutionSettings
from tai_execution.ig import deal_reference
from tai_store import Store
from tai_telemetry.metrics import Telemetry
from tests.factories import T0
from tests.integration.execution.execution_support import record_as_risk, signed_approval
from tests.integration.execution.ig_stub import (
    API_KEY,
    IDENTIFIER,
    PASSWORD,
    IgStub,
    IgStubState,
    start_stub,
    stop_stub,
)

pytestmark = pytest.mark.integration

EPIC = "CS.D.EURUSD.MINI.IP"


@dataclass
class Live:
    stub: IgStub
    store: Store
    clock: FakeClock
    signer: ApprovalSigner
    settings: ExecutionSettings
    alerts: list[AlertRaised]
    bus: InMemoryBus | None = None
    execution: ExecutionApp | None = None

    async def start(self) -> ExecutionApp:
        telemetry = Telemetry(service="execution")
        self.bus = InMemoryBus("test", clock=self.clock, telemetry=telemetry, deterministic=True)
        await self.bus.start()

        async def capture(envelope: Envelope[Message]) -> None:
            if isinstance(envelope.message, AlertRaised):
                self.alerts.append(envelope.message)

        await self.bus.subscribe(Subscription("test.alerts", [Binding("alert.*")], capture))
        self.execution = create_app(
            self.settings, bus=self.bus, store=self.store, clock=self.clock, telemetry=telemetry
        )
        await self.execution.start()
        return self.execution

    async def stop(self) -> None:
        if self.execution is not None:
            await self.execution.stop()
        if self.bus is not None:
            await self.bus.close()

    def approval(self, order_id: str, **changes: object) -> OrderApproved:
        return signed_approval(
            self.signer,
            order_id,
            signal_time=T0,
            issued_at=self.clock.now(),
            quantity=20_000.0,  # two mini contracts of 10,000 EUR
            **changes,  # type: ignore[arg-type]
        )

    async def order_state(self, order_id: str) -> tuple[str, str]:
        async with self.store.transaction() as unit:
            order = await unit.orders.get(order_id)
        assert order is not None
        return order.state, order.reason


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    clock = FakeClock(T0 + timedelta(hours=1))
    stub, runner, url = await start_stub(IgStubState(clock=clock.now))
    private_pem = generate_private_key_pem()
    database = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite'}"
    store = Store(database)
    await store.migrate()
    settings = ExecutionSettings(
        approval_public_keys=public_key_pem(private_pem).decode(),
        broker="ig",
        ig_base_url=url,
        ig_api_key=API_KEY,
        ig_identifier=IDENTIFIER,
        ig_password=PASSWORD,
        ig_epics={"EURUSD": EPIC},
        ig_timeout_seconds=2.0,
        outbox_sweep_seconds=0,
        reconcile_seconds=0,
        database_url=database,
        amqp_url="memory://",
        redis_url="",  # the allowances counted in-process: this test owns its stub's account
    )
    harness = Live(
        stub,
        store,
        clock,
        ApprovalSigner.from_pem(private_pem),
        settings,
        [],
    )
    yield harness
    await harness.stop()
    await store.close()
    await stop_stub(stub, runner)


async def _crash_after_submitting(live: Live, approval: OrderApproved) -> None:
    """Leave the ledger as a crash after the SUBMITTED commit, before the confirm, leaves it."""
    now = live.clock.now()
    await record_as_risk(live.store, approval, now)
    async with live.store.transaction() as unit:
        assert await unit.approvals.consume(approval.approval_id, now)
        await unit.orders.set_state(approval.order_id, OrderState.SUBMITTED, at=now, reason="sent")


async def test_approval_is_dealt_once_and_recorded_at_igs_level(live: Live) -> None:
    # Arrange
    execution = await live.start()
    approval = live.approval("ord-1", stop_loss=1.05, take_profit=1.2)
    await record_as_risk(live.store, approval, live.clock.now())
    assert live.bus is not None
    # Act
    await live.bus.publish(approval)
    await live.bus.drain()
    # Assert
    assert live.stub.state.deal_posts == {deal_reference("ord-1"): 1}
    [position] = live.stub.state.positions.values()
    assert (position["stopLevel"], position["limitLevel"]) == (1.05, 1.2)
    async with live.store.transaction() as unit:
        [fill] = await unit.fills.for_order("ord-1")
    assert (fill.price, fill.quantity, fill.broker) == (1.1, 20_000.0, "ig")
    assert (await live.order_state("ord-1"))[0] == "FILLED"
    assert execution.context.account.position("EURUSD").quantity == 20_000.0


async def test_rejected_deal_is_a_rejected_order_with_igs_reason(live: Live) -> None:
    await live.start()
    live.stub.state.rejections.append("INSUFFICIENT_FUNDS")
    approval = live.approval("ord-1")
    await record_as_risk(live.store, approval, live.clock.now())
    assert live.bus is not None
    await live.bus.publish(approval)
    await live.bus.drain()
    state, reason = await live.order_state("ord-1")
    assert state == "REJECTED"
    assert "insufficient funds" in reason
    assert "INSUFFICIENT_FUNDS" in reason


async def test_restart_confirms_an_order_ig_already_dealt_without_resending(live: Live) -> None:
    # Arrange: IG dealt the order, the process died before recording the confirmation
    approval = live.approval("ord-1")
    await _crash_after_submitting(live, approval)
    reference = deal_reference("ord-1")
    live.stub.state.deal_posts[reference] += 1
    live.stub._open(
        reference, {"epic": EPIC, "direction": "BUY", "size": 2.0, "currencyCode": "USD"}
    )
    # Act
    await live.start()
    assert live.bus is not None
    await live.bus.drain()
    # Assert
    assert live.stub.state.deal_posts == {reference: 1}
    assert (await live.order_state("ord-1"))[0] == "FILLED"
    assert live.alerts == []  # the start-up reconciliation found broker and ledger equal


async def test_restart_after_the_confirmation_expired_finds_the_deal_and_never_resends(
    live: Live,
) -> None:
    # Arrange: IG dealt the order more than a minute before the restart, so /confirms has
    # forgotten it (404 deal-not-found) although the position is open
    approval = live.approval("ord-1")
    await _crash_after_submitting(live, approval)
    reference = deal_reference("ord-1")
    live.stub.state.deal_posts[reference] += 1
    live.stub._open(
        reference, {"epic": EPIC, "direction": "BUY", "size": 2.0, "currencyCode": "USD"}
    )
    live.stub.state.expire_confirms()
    # Act
    await live.start()
    assert live.bus is not None
    await live.bus.drain()
    # Assert: found among IG's positions by its reference, recorded, never dealt again
    assert live.stub.state.deal_posts == {reference: 1}
    assert len(live.stub.state.positions) == 1
    assert (await live.order_state("ord-1"))[0] == "FILLED"
    async with live.store.transaction() as unit:
        [fill] = await unit.fills.for_order("ord-1")
    assert (fill.price, fill.quantity) == (1.1, 20_000.0)
    assert live.alerts == []


async def test_restart_after_the_deal_was_closed_again_records_it_from_the_activity(
    live: Live,
) -> None:
    # Arrange: dealt, stopped out since, and the confirmation forgotten
    approval = live.approval("ord-1", stop_loss=1.05)
    await _crash_after_submitting(live, approval)
    reference = deal_reference("ord-1")
    live.stub.state.deal_posts[reference] += 1
    live.stub._open(
        reference,
        {"epic": EPIC, "direction": "BUY", "size": 2.0, "currencyCode": "USD", "forceOpen": True},
    )
    live.stub.state.close_all(EPIC)
    live.stub.state.expire_confirms()
    # Act
    await live.start()
    # Assert: not sent again; the entry is filled from IG's activity
    assert live.stub.state.deal_posts == {reference: 1}
    assert live.stub.state.positions == {}
    state, _ = await live.order_state("ord-1")
    assert state == "FILLED"


async def test_restart_sends_an_order_ig_never_received_exactly_once(live: Live) -> None:
    await _crash_after_submitting(live, live.approval("ord-1"))
    await live.start()
    assert live.stub.state.deal_posts == {deal_reference("ord-1"): 1}
    assert (await live.order_state("ord-1"))[0] == "FILLED"


async def test_restart_expires_an_unsent_order_whose_approval_ran_out(live: Live) -> None:
    await _crash_after_submitting(live, live.approval("ord-1"))
    live.clock.advance(timedelta(minutes=10))
    await live.start()
    assert live.stub.state.deal_posts == {}
    assert (await live.order_state("ord-1"))[0] == "EXPIRED"


async def test_position_at_ig_unknown_to_the_ledger_fails_reconciliation(live: Live) -> None:
    live.stub.state.deal_posts["MANUAL1"] += 1
    live.stub._open(
        "MANUAL1", {"epic": EPIC, "direction": "SELL", "size": 3.0, "currencyCode": "USD"}
    )
    await live.start()
    assert live.bus is not None
    await live.bus.drain()
    [alert] = live.alerts
    assert (alert.code, alert.severity.value) == ("reconciliation_failed", "critical")
    assert "broker holds -30000" in alert.message


async def test_opposite_order_nets_off_the_position_at_ig_and_in_the_ledger(live: Live) -> None:
    # Arrange
    await live.start()
    assert live.bus is not None
    buy = live.approval("ord-buy")
    sell = live.approval("ord-sell", side=Side.SELL)
    # Act
    for approval in (buy, sell):
        await record_as_risk(live.store, approval, live.clock.now())
        await live.bus.publish(approval)
        await live.bus.drain()
    # Assert
    assert live.stub.state.positions == {}
    async with live.store.transaction() as unit:
        [position] = await unit.positions.list("paper")
    assert position.quantity == 0.0
    assert await live.execution.context.live.positions() == {}  # type: ignore[union-attr]


async def test_resting_limit_order_accepted_by_ig_stays_submitted(live: Live) -> None:
    await live.start()
    assert live.bus is not None
    approval = live.approval("ord-limit", order_type=OrderType.LIMIT, limit_price=1.05)
    await record_as_risk(live.store, approval, live.clock.now())
    await live.bus.publish(approval)
    await live.bus.drain()
    assert (await live.order_state("ord-limit"))[0] == "SUBMITTED"
    assert len(live.stub.state.working_orders) == 1
    async with live.store.transaction() as unit:
        fills = await unit.fills.for_order("ord-limit")
    assert fills == []
