"""Execution on the in-memory bus and SQLite: transitions, outbox, brackets, reconciliation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import FakeClock
from tai_core.signing import ApprovalSigner, generate_private_key_pem, public_key_pem
from tai_events import AlertRaised, Message, OrderApproved, OrderStatusChanged
from tai_events.codec import Envelope
from tai_events.market import BarClosed, Timeframe
from tai_execution import paper
from tai_execution.app import ExecutionApp, create_app
from tai_execution.config import ExecutionSettings
from tai_execution.handlers import flush_snapshots, reconcile_positions
from tai_execution.paper import PaperResult
from tai_execution.reconciliation import PositionMismatch
from tai_store import Store
from tai_store.outbox import OutboxRelay
from tai_telemetry.metrics import Telemetry
from tests.factories import T0
from tests.integration.execution.execution_support import record_as_risk, signed_approval

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)


@dataclass
class Harness:
    bus: InMemoryBus
    store: Store
    clock: FakeClock
    signer: ApprovalSigner
    settings: ExecutionSettings
    execution: ExecutionApp
    telemetry: Telemetry
    events: list[Message] = field(default_factory=list)

    def states(self, order_id: str) -> list[str]:
        return [
            event.state.value
            for event in self.events
            if isinstance(event, OrderStatusChanged) and event.order_id == order_id
        ]

    def capture_subscription(self) -> Subscription:
        async def capture(envelope: Envelope[Message]) -> None:
            self.events.append(envelope.message)

        return Subscription(
            "test.capture",
            [
                Binding("order.*"),
                Binding("alert.*"),
                Binding("execution.fill"),
                Binding("position.updated"),
            ],
            capture,
        )

    def alerts(self) -> list[AlertRaised]:
        return [event for event in self.events if isinstance(event, AlertRaised)]

    async def restart(self) -> ExecutionApp:
        await self.execution.stop()
        await self.bus.close()
        self.telemetry = Telemetry(service="execution-restarted")
        self.bus = InMemoryBus(
            "test", clock=self.clock, telemetry=self.telemetry, deterministic=True
        )
        await self.bus.start()
        await self.bus.subscribe(self.capture_subscription())
        self.execution = create_app(
            self.settings,
            bus=self.bus,
            store=self.store,
            clock=self.clock,
            telemetry=self.telemetry,
        )
        await self.execution.start()
        return self.execution


async def _harness(tmp_path: Path, **overrides: object) -> Harness:
    private_pem = generate_private_key_pem()
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite'}"
    clock = FakeClock(T0 + 2 * HOUR)
    telemetry = Telemetry(service="execution")
    store = Store(url)
    await store.migrate()
    bus = InMemoryBus("test", clock=clock, telemetry=telemetry, deterministic=True)
    settings = ExecutionSettings(
        approval_public_keys=public_key_pem(private_pem).decode(),
        outbox_sweep_seconds=0,
        reconcile_seconds=0,
        commission_rate=0.0,
        database_url=url,
        amqp_url="memory://",
        **overrides,  # type: ignore[arg-type]
    )
    execution = create_app(settings, bus=bus, store=store, clock=clock, telemetry=telemetry)
    harness = Harness(
        bus, store, clock, ApprovalSigner.from_pem(private_pem), settings, execution, telemetry
    )
    await bus.start()
    await bus.subscribe(harness.capture_subscription())
    await execution.start()
    return harness


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    built = await _harness(tmp_path)
    yield built
    await built.execution.stop()
    await built.bus.close()
    await built.store.close()


def bar(
    index: int, open_: float, high: float, low: float, close: float, volume: float = 0.0
) -> BarClosed:
    opened = T0 + index * HOUR
    return BarClosed(
        symbol="EURUSD",
        timeframe=Timeframe.H1,
        opened_at=opened,
        closed_at=opened + HOUR,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        source="test",
    )


async def _approve(harness: Harness, order_id: str, **changes: object) -> OrderApproved:
    approval = signed_approval(
        harness.signer,
        order_id,
        signal_time=T0 + HOUR,
        issued_at=harness.clock.now(),
        **changes,  # type: ignore[arg-type]
    )
    await record_as_risk(harness.store, approval, harness.clock.now())
    await harness.bus.publish(approval)
    await harness.bus.drain()
    return approval


async def _bar(harness: Harness, item: BarClosed) -> None:
    await harness.bus.publish(item)
    await harness.bus.drain()


def _metric(telemetry: Telemetry, name: str, labels: dict[str, str] | None = None) -> float:
    value = telemetry.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


async def test_fill_writes_each_transition_as_a_ledger_row_and_an_event(harness: Harness) -> None:
    # Act
    await _approve(harness, "ord-1")
    await _bar(harness, bar(1, 1.20, 1.21, 1.19, 1.20))
    # Assert
    async with harness.store.transaction() as unit:
        order = await unit.orders.get("ord-1")
        rows = [(event.previous_state, event.state) for event in await unit.orders.events("ord-1")]
        pending = await unit.outbox.count_pending()
        [position] = await unit.positions.list("paper")
    assert order is not None
    assert (order.state, order.filled_quantity, order.average_fill_price) == ("FILLED", 1000.0, 1.2)
    assert rows == [(None, "NEW"), ("NEW", "SUBMITTED"), ("SUBMITTED", "FILLED")]
    assert harness.states("ord-1") == ["SUBMITTED", "FILLED"]
    assert pending == 0
    assert position.quantity == 1000.0
    assert _metric(harness.telemetry, "tai_orders_total", {"state": "FILLED"}) == 1.0
    assert _metric(harness.telemetry, "tai_open_positions") == 1.0


async def test_events_of_a_committed_fill_wait_in_the_outbox_when_publishing_fails(
    harness: Harness,
) -> None:
    # Arrange: the bus refuses every publish after the approval was recorded
    await _approve(harness, "ord-1")

    async def refuse(*_arguments: object) -> None:
        raise ConnectionError("broker connection lost")

    context = harness.execution.context
    working_relay = context.relay
    context.relay = OutboxRelay(harness.store, refuse, producer="execution")
    # Act: the fill commits, then publishing fails (the bus logs the handler failure)
    await _bar(harness, bar(1, 1.20, 1.21, 1.19, 1.20))
    async with harness.store.transaction() as unit:
        order = await unit.orders.get("ord-1")
        pending = await unit.outbox.count_pending("execution")
    # Assert: ledger row and events committed together; a later relay publishes every event
    assert order is not None
    assert order.state == "FILLED"
    assert pending == 3  # FillExecuted, OrderStatusChanged(FILLED), PositionUpdated
    assert await working_relay.publish_pending() == 3
    await harness.bus.drain()
    assert harness.states("ord-1") == ["SUBMITTED", "FILLED"]


async def test_partial_fills_pass_through_partially_filled(tmp_path: Path) -> None:
    harness = await _harness(tmp_path, max_volume_share=0.1)
    try:
        await _approve(harness, "ord-1")
        await _bar(harness, bar(1, 1.20, 1.21, 1.19, 1.20, volume=6000))
        await _bar(harness, bar(2, 1.22, 1.23, 1.21, 1.22, volume=6000))
        async with harness.store.transaction() as unit:
            order = await unit.orders.get("ord-1")
            fills = await unit.fills.for_order("ord-1")
        assert harness.states("ord-1") == ["SUBMITTED", "PARTIALLY_FILLED", "FILLED"]
        assert [fill.quantity for fill in fills] == [600.0, 400.0]
        assert order is not None
        assert order.average_fill_price == pytest.approx((600 * 1.20 + 400 * 1.22) / 1000)
    finally:
        await harness.execution.stop()
        await harness.bus.close()
        await harness.store.close()


async def test_bracket_legs_are_orders_and_the_take_profit_cancels_the_stop(
    harness: Harness,
) -> None:
    # Arrange
    await _approve(harness, "ord-1", stop_loss=1.15, take_profit=1.25)
    await _bar(harness, bar(1, 1.20, 1.21, 1.19, 1.20))
    async with harness.store.transaction() as unit:
        legs = await unit.orders.list_by_state(["SUBMITTED"])
    stop = next(leg for leg in legs if leg.order_type == "STOP")
    target = next(leg for leg in legs if leg.order_type == "LIMIT")
    # Act
    await _bar(harness, bar(2, 1.22, 1.26, 1.21, 1.24))
    # Assert
    assert harness.states(target.order_id) == ["NEW", "SUBMITTED", "FILLED"]
    assert harness.states(stop.order_id) == ["NEW", "SUBMITTED", "CANCELLED"]
    async with harness.store.transaction() as unit:
        [position] = await unit.positions.list("paper")
        stop_row = await unit.orders.get(stop.order_id)
    assert position.quantity == 0.0
    assert position.realized_pnl == pytest.approx(1000 * (1.25 - 1.20))
    assert stop_row is not None
    assert "one-cancels-other" in stop_row.reason


async def test_restart_rearms_the_bracket_from_the_ledger(harness: Harness) -> None:
    # Arrange: entry filled, bracket armed, then the service restarts
    await _approve(harness, "ord-1", stop_loss=1.15, take_profit=1.25)
    await _bar(harness, bar(1, 1.20, 1.21, 1.19, 1.20))
    execution = await harness.restart()
    assert len(execution.context.broker.armed_brackets()) == 1
    # Act: a bar through the stop
    await _bar(harness, bar(2, 1.18, 1.19, 1.12, 1.13))
    # Assert
    async with harness.store.transaction() as unit:
        [position] = await unit.positions.list("paper")
        filled = await unit.orders.list_by_state(["FILLED"])
        cancelled = await unit.orders.list_by_state(["CANCELLED"])
    assert position.quantity == 0.0
    assert sorted(order.order_type for order in filled) == ["MARKET", "STOP"]
    assert [order.order_type for order in cancelled] == ["LIMIT"]


async def test_reconciliation_mismatch_raises_a_critical_alert_and_is_audited(
    harness: Harness,
) -> None:
    # Arrange: the broker's book and the ledger agree, then the broker's book drifts
    await _approve(harness, "ord-1")
    await _bar(harness, bar(1, 1.20, 1.21, 1.19, 1.20))
    context = harness.execution.context
    assert await reconcile_positions(context, audit_success=False) == []
    context.broker.restore_position("EURUSD", 400.0)
    # Act
    mismatches = await reconcile_positions(context, audit_success=False)
    await harness.bus.drain()
    # Assert
    assert [(item.symbol, item.broker_quantity, item.ledger_quantity) for item in mismatches] == [
        ("EURUSD", 400.0, 1000.0)
    ]
    [alert] = harness.alerts()
    assert (alert.code, alert.severity.value) == ("reconciliation_failed", "critical")
    async with harness.store.transaction() as unit:
        audit = await unit.audit.list(action="execution.reconciliation_failed")
    assert len(audit) == 1
    assert (
        _metric(harness.telemetry, "tai_execution_reconciliations_total", {"outcome": "mismatch"})
        == 1.0
    )


async def test_start_reconciles_and_audits_the_outcome(harness: Harness) -> None:
    async with harness.store.transaction() as unit:
        audit = await unit.audit.list(action="execution.reconciliation")
    assert [entry.outcome for entry in audit] == ["ok"]


async def test_unrealised_pnl_gauge_is_in_the_account_currency(tmp_path: Path) -> None:
    # Arrange: a EUR account long 1000 EURUSD from 1.20; P&L is earned in USD
    harness = await _harness(tmp_path, account_currency="EUR")
    try:
        await _approve(harness, "ord-1")
        await _bar(harness, bar(1, 1.20, 1.21, 1.19, 1.20))
        # Act: the next close is 1.25 -> 50 USD open profit, 50 / 1.25 = 40 EUR
        await _bar(harness, bar(2, 1.22, 1.26, 1.21, 1.25))
        # Assert
        gauge = _metric(harness.telemetry, "tai_execution_unrealized_pnl", {"symbol": "EURUSD"})
        assert gauge == pytest.approx(40.0)
    finally:
        await harness.execution.stop()
        await harness.bus.close()
        await harness.store.close()


async def test_reconciliation_waits_for_a_fill_being_recorded(harness: Harness) -> None:
    # Arrange: a reconciliation tick fires right after the broker fills, before the ledger has it
    await _approve(harness, "ord-1")
    context = harness.execution.context
    original = context.broker.on_bar
    ticks: list[asyncio.Task[list[PositionMismatch]]] = []

    def fill_then_tick(item: BarClosed) -> list[PaperResult]:
        results = original(item)
        ticks.append(asyncio.create_task(harness.execution.reconcile_once()))
        return results

    context.broker.on_bar = fill_then_tick  # type: ignore[method-assign,assignment]
    # Act
    await _bar(harness, bar(1, 1.20, 1.21, 1.19, 1.20))
    [tick] = ticks
    mismatches = await tick
    await harness.bus.drain()
    # Assert: the tick compared the book only after the fill was recorded
    assert mismatches == []
    assert harness.alerts() == []


async def test_approval_filling_at_an_already_handled_bar_updates_the_latest_snapshot(
    harness: Harness,
) -> None:
    # Arrange: bars 1 and 2 are handled (and snapshotted) before the approval for bar 1 arrives
    await _bar(harness, bar(1, 1.20, 1.21, 1.19, 1.20))
    await _bar(harness, bar(2, 1.22, 1.23, 1.21, 1.22))
    initial = harness.settings.initial_cash
    # Act: it fills at bar 1's open, a bar whose snapshot was written already
    await _approve(harness, "ord-1")
    # Assert: the newest snapshot includes the fill, marked at bar 2's close
    async with harness.store.transaction() as unit:
        latest = await unit.snapshots.latest(harness.settings.account)
        [fill] = await unit.fills.list()
    assert fill.price == 1.20
    assert latest is not None
    assert latest.taken_at == bar(2, 1.22, 1.23, 1.21, 1.22).closed_at
    assert latest.cash == pytest.approx(initial - 1000 * 1.20)
    assert latest.equity == pytest.approx(initial + 1000 * (1.22 - 1.20))


async def test_after_a_restart_a_late_approval_fills_at_the_bar_after_its_signal(
    harness: Harness,
) -> None:
    # Arrange: bars 1-3 were stored by ingestion and handled before the restart, nothing working
    bars = [bar(index, 1.20 + index / 100, 1.25, 1.15, 1.20) for index in (1, 2, 3)]
    async with harness.store.transaction() as unit:
        await unit.ohlcv.upsert_many(bars)
    for item in bars:
        await _bar(harness, item)
    await harness.restart()
    # Act: the approval for the signal at bar 1's open arrives only now
    await _approve(harness, "ord-1")
    # Assert: it fills at bar 1's open (as without the restart), not at a later bar
    async with harness.store.transaction() as unit:
        [fill] = await unit.fills.list()
        latest = await unit.snapshots.latest(harness.settings.account)
    assert fill.price == pytest.approx(1.21)
    assert latest is not None
    assert latest.taken_at == bars[-1].closed_at
    assert latest.cash == pytest.approx(harness.settings.initial_cash - 1000 * 1.21)


async def test_equity_snapshots_are_written_in_one_batch_and_on_stop(harness: Harness) -> None:
    # Arrange: three bars handled with snapshot batching on (the default)
    bars = [bar(index, 1.20, 1.21, 1.19, 1.20) for index in (1, 2, 3)]
    for item in bars:
        await _bar(harness, item)
    async with harness.store.transaction() as unit:
        before = await unit.snapshots.list(harness.settings.account)
    # Act
    await harness.execution.stop()
    # Assert: nothing was written per bar; stopping wrote every point
    async with harness.store.transaction() as unit:
        after = await unit.snapshots.list(harness.settings.account)
    assert before == []
    assert [point.taken_at for point in after] == [item.closed_at for item in bars]
    assert harness.execution.context.pending_snapshots == {}


async def test_snapshots_that_failed_to_write_stay_pending(harness: Harness) -> None:
    # Arrange: a bar handled, then the ledger refuses the flush
    await _bar(harness, bar(1, 1.20, 1.21, 1.19, 1.20))
    context = harness.execution.context
    working_store = context.store

    class RefusingStore:
        def transaction(self) -> object:
            raise ConnectionError("ledger unavailable")

    context.store = RefusingStore()  # type: ignore[assignment]
    # Act
    with pytest.raises(ConnectionError):
        await flush_snapshots(context)
    context.store = working_store
    await flush_snapshots(context)
    # Assert
    async with harness.store.transaction() as unit:
        [point] = await unit.snapshots.list(harness.settings.account)
    assert point.equity == pytest.approx(harness.settings.initial_cash)
    assert context.pending_snapshots == {}


async def test_each_bar_is_snapshotted_at_once_when_batching_is_off(tmp_path: Path) -> None:
    harness = await _harness(tmp_path, snapshot_flush_seconds=0)
    try:
        await _bar(harness, bar(1, 1.20, 1.21, 1.19, 1.20))
        async with harness.store.transaction() as unit:
            points = await unit.snapshots.list(harness.settings.account)
        assert len(points) == 1
    finally:
        await harness.execution.stop()
        await harness.bus.close()
        await harness.store.close()


async def test_an_approval_later_than_the_kept_bars_fills_at_the_stored_bar_after_its_signal(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: execution keeps only two bars, and handled six before the approval arrives
    monkeypatch.setattr(paper, "RECENT_BARS_KEPT", 2)
    bars = [bar(index, 1.20 + index / 100, 1.30, 1.10, 1.20) for index in range(1, 7)]
    async with harness.store.transaction() as unit:
        await unit.ohlcv.upsert_many(bars)
    for item in bars:
        await _bar(harness, item)
    # Act: the approval for the signal at bar 1's open
    await _approve(harness, "ord-1")
    # Assert: filled at bar 1's open, read back from the ledger's bars
    async with harness.store.transaction() as unit:
        [fill] = await unit.fills.list()
    assert fill.price == pytest.approx(1.21)
    assert fill.filled_at == bars[0].opened_at


async def test_a_late_approval_filling_in_parts_takes_every_stored_bar_since_its_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: at most 10 % of a bar's volume per fill; two bars kept, six handled
    harness = await _harness(tmp_path, max_volume_share=0.1)
    monkeypatch.setattr(paper, "RECENT_BARS_KEPT", 2)
    bars = [bar(index, 1.20 + index / 100, 1.30, 1.10, 1.20, volume=6000) for index in range(1, 7)]
    try:
        async with harness.store.transaction() as unit:
            await unit.ohlcv.upsert_many(bars)
        for item in bars:
            await _bar(harness, item)
        # Act
        await _approve(harness, "ord-1")
        # Assert: 600 at bar 1's open and the rest at bar 2's, both read back from the ledger
        async with harness.store.transaction() as unit:
            fills = await unit.fills.for_order("ord-1")
        assert [(fill.quantity, fill.filled_at) for fill in fills] == [
            (600.0, bars[0].opened_at),
            (400.0, bars[1].opened_at),
        ]
    finally:
        await harness.execution.stop()
        await harness.bus.close()
        await harness.store.close()
