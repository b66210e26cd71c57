"""The risk service on the in-memory bus and SQLite: circuit breakers, admin commands, gauges,
the audit trail, rebuilding on restart and catching up after another risk process decided."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import SystemClock
from tai_core.signing import generate_private_key_pem
from tai_events import AlertRaised, Message, OrderRequested, Side, TradingState
from tai_events.alerts import Severity
from tai_events.codec import Envelope
from tai_events.control import HaltTrading, ResumeTrading
from tai_events.orders import FillExecuted, OrderApproved, OrderRejected
from tai_events.risk import RiskStateChanged
from tai_events.topics import ALL_ALERTS, ORDER_APPROVED, ORDER_REJECTED, RISK_STATE
from tai_risk.app import RiskApp, create_app
from tai_risk.config import RiskSettings
from tai_store import Store
from tai_telemetry.metrics import Telemetry
from tests.factories import T0, make_bar

pytestmark = pytest.mark.integration

PRIVATE_PEM = generate_private_key_pem().decode()


@dataclass
class Harness:
    """One risk process: its bus, app, telemetry and what it published."""

    bus: InMemoryBus
    app: RiskApp
    telemetry: Telemetry
    published: list[Message] = field(default_factory=list)

    def of_type(self, kind: type[Message]) -> list[Message]:
        return [message for message in self.published if isinstance(message, kind)]

    def gauge(self, name: str) -> float | None:
        return self.telemetry.registry.get_sample_value(name)

    async def send(self, message: Message) -> None:
        await self.bus.publish(message)
        await self.bus.drain()


async def _harness(store: Store, url: str) -> Harness:
    clock = SystemClock()
    telemetry = Telemetry(service="risk-test")
    bus = InMemoryBus("test", clock=clock, telemetry=telemetry, deterministic=True)
    settings = RiskSettings(
        approval_private_key=PRIVATE_PEM,
        outbox_sweep_seconds=0,
        database_url=url,
        amqp_url="memory://",
    )
    app = create_app(settings, bus=bus, store=store, clock=clock, telemetry=telemetry)
    harness = Harness(bus, app, telemetry)

    async def capture(envelope: Envelope[Message]) -> None:
        harness.published.append(envelope.message)

    await bus.start()
    bindings = [Binding(key) for key in (RISK_STATE, ALL_ALERTS, ORDER_APPROVED, ORDER_REJECTED)]
    await bus.subscribe(Subscription("test.observed", bindings, capture))
    await app.start()
    return harness


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[tuple[Store, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite'}"
    store = Store(url)
    await store.migrate()
    yield store, url
    await store.close()


@pytest.fixture
async def risk(ledger: tuple[Store, str]) -> AsyncIterator[Harness]:
    harness = await _harness(*ledger)
    yield harness
    await harness.bus.close()


def _order(order_id: str, quantity: float = 10_000, side: Side = Side.BUY) -> OrderRequested:
    return OrderRequested(
        order_id=order_id,
        strategy="sma_cross",
        symbol="EURUSD",
        side=side,
        quantity=quantity,
        reference_price=1.0,
        signal_time=T0,
        requested_at=T0,
    )


def _fill(fill_id: str, quantity: float, price: float, side: Side = Side.BUY) -> FillExecuted:
    return FillExecuted(
        fill_id=fill_id,
        order_id=f"ord-{fill_id}",
        strategy="sma_cross",
        symbol="EURUSD",
        side=side,
        quantity=quantity,
        price=price,
        commission=0.0,
        filled_at=T0,
        broker="paper",
    )


def _states(harness: Harness) -> list[tuple[TradingState, str]]:
    return [
        (message.state, message.changed_by)
        for message in harness.of_type(RiskStateChanged)
        if isinstance(message, RiskStateChanged)
    ]


def _rejected_rules(harness: Harness) -> list[str]:
    return [m.rule for m in harness.of_type(OrderRejected) if isinstance(m, OrderRejected)]


async def test_halt_rejects_everything_until_an_admin_resumes(risk: Harness) -> None:
    # Arrange
    await risk.send(make_bar(-1, 1.0))
    # Act
    await risk.send(HaltTrading(requested_by="alice", requested_at=T0, reason="kill switch"))
    halted_gauge = risk.gauge("tai_risk_trading_state")
    await risk.send(_order("ord-halted"))
    await risk.send(ResumeTrading(requested_by="alice", requested_at=T0, reason="checked"))
    await risk.send(_order("ord-resumed"))
    # Assert
    assert _states(risk) == [(TradingState.HALTED, "alice"), (TradingState.ACTIVE, "alice")]
    assert halted_gauge == 2
    assert risk.gauge("tai_risk_trading_state") == 0
    assert _rejected_rules(risk) == ["trading_state"]
    assert [m.order_id for m in risk.of_type(OrderApproved) if isinstance(m, OrderApproved)] == [
        "ord-resumed"
    ]
    alerts = [m for m in risk.of_type(AlertRaised) if isinstance(m, AlertRaised)]
    assert [alert.code for alert in alerts] == ["trading_state_changed"] * 2
    assert alerts[0].severity is Severity.CRITICAL
    async with risk.app.store.transaction() as unit:
        audit = await unit.audit.list(action="risk.trading_state")
        decisions = await unit.audit.list(action="risk.decision")
    assert sorted(entry.subject for entry in audit) == ["ACTIVE", "HALTED"]
    assert sorted(entry.outcome for entry in decisions) == ["approved", "rejected"]


async def test_daily_loss_of_three_percent_halts_until_the_next_session(risk: Harness) -> None:
    # Arrange: long 100,000 EURUSD at 1.0 on 100,000 of equity
    await risk.send(make_bar(-1, 1.0))
    await risk.send(_fill("f1", 100_000, 1.0))
    # Act: the price falls 3.1 % within the session, then the next session opens
    await risk.send(make_bar(0, 0.969))
    equity_gauge = risk.gauge("tai_equity")
    exposure_gauge = risk.gauge("tai_gross_exposure")
    await risk.send(_order("ord-during-halt", 1_000))
    await risk.send(make_bar(24, 0.969))
    # Assert
    assert _states(risk) == [
        (TradingState.HALTED, "circuit_breaker.daily_loss"),
        (TradingState.ACTIVE, "risk.session"),
    ]
    assert equity_gauge == pytest.approx(96_900)
    assert exposure_gauge == pytest.approx(96_900)  # 100,000 units marked at 0.969
    assert risk.gauge("tai_drawdown_pct") == pytest.approx(3.1)
    assert _rejected_rules(risk) == ["trading_state"]
    halted = risk.of_type(RiskStateChanged)[0]
    assert isinstance(halted, RiskStateChanged)
    assert halted.daily_pnl == pytest.approx(-3_100)


async def test_a_drawdown_of_ten_percent_halts_and_needs_an_admin(risk: Harness) -> None:
    await risk.send(make_bar(-1, 1.0))
    await risk.send(_fill("f1", 200_000, 1.0))
    await risk.send(make_bar(0, 0.9825))  # -3.5 %: daily loss halts first
    await risk.send(make_bar(30, 0.95))  # next session, -10 % from the peak
    assert _states(risk)[-1] == (TradingState.HALTED, "circuit_breaker.drawdown")
    await risk.send(make_bar(60, 0.95))  # another session: a drawdown halt is not lifted
    assert risk.app.context.trading.state is TradingState.HALTED


async def test_five_losing_trades_in_a_session_reduce(risk: Harness) -> None:
    await risk.send(make_bar(-1, 1.0))
    for index in range(5):
        await risk.send(_fill(f"open{index}", 1_000, 1.0))
        await risk.send(_fill(f"close{index}", 1_000, 0.999, Side.SELL))
    assert _states(risk) == [(TradingState.REDUCING, "circuit_breaker.consecutive_losses")]
    assert risk.gauge("tai_risk_trading_state") == 1


async def test_a_failed_reconciliation_from_execution_reduces(risk: Harness) -> None:
    # Arrange
    await risk.send(make_bar(-1, 1.0))
    alert = AlertRaised(
        severity=Severity.CRITICAL,
        source="execution",
        code="reconciliation_failed",
        message="broker holds 10,000 EURUSD, the ledger 0",
        raised_at=T0,
    )
    # Act
    await risk.send(alert)
    await risk.send(_order("ord-adds", 1_000))
    # Assert
    assert _states(risk) == [(TradingState.REDUCING, "circuit_breaker.reconciliation")]
    assert _rejected_rules(risk) == ["trading_state"]


async def test_a_burst_of_critical_alerts_from_other_services_reduces(risk: Harness) -> None:
    for index in range(5):
        await risk.send(
            AlertRaised(
                severity=Severity.CRITICAL,
                source="execution",
                code="approval_signature_invalid",
                message=f"forged approval {index}",
                raised_at=T0 + timedelta(seconds=index),
            )
        )
    assert _states(risk) == [(TradingState.REDUCING, "circuit_breaker.error_burst")]


async def test_the_state_is_rebuilt_from_the_ledger_on_restart(
    risk: Harness, ledger: tuple[Store, str]
) -> None:
    # Arrange
    await risk.send(make_bar(-1, 1.0))
    await risk.send(_order("ord-1"))
    await risk.send(HaltTrading(requested_by="alice", requested_at=T0))
    # Act
    restarted = await _harness(*ledger)
    try:
        context = restarted.app.context
        # Assert
        assert context.trading.state is TradingState.HALTED
        assert context.portfolio.projected_quantity("EURUSD") == 10_000
        assert "ord-1" in context.portfolio.decided_order_ids
        assert restarted.gauge("tai_risk_trading_state") == 2
    finally:
        await restarted.bus.close()


async def test_a_standby_catches_up_with_what_the_active_process_decided(
    risk: Harness, ledger: tuple[Store, str]
) -> None:
    # Arrange: the standby starts first (empty ledger), then the active one decides
    standby = await _harness(*ledger)
    try:
        await risk.send(make_bar(-1, 1.0))
        await risk.send(_order("ord-active"))
        # Act: the active process dies; the standby receives the next messages
        await standby.send(make_bar(-1, 1.0))
        await standby.send(_order("ord-active"))  # a redelivery under a new message id
        await standby.send(_order("ord-next", 8_000))
        # Assert
        context = standby.app.context
        async with standby.app.store.transaction() as unit:
            decisions = await unit.audit.list(action="risk.decision")
        outcomes = sorted((entry.subject, entry.outcome) for entry in decisions)
        assert outcomes == [
            ("ord-active", "approved"),
            ("ord-active", "duplicate_ignored"),
            ("ord-next", "approved"),
        ]
        assert context.portfolio.projected_quantity("EURUSD") == 18_000
        approved = [m for m in standby.of_type(OrderApproved) if isinstance(m, OrderApproved)]
        assert [approval.order_id for approval in approved] == ["ord-next"]
    finally:
        await standby.bus.close()


async def test_a_late_request_is_priced_at_its_signal_bar_not_the_newest(risk: Harness) -> None:
    # Arrange: risk saw the signal bar (close 1.0), then the price ran 20 % away
    bars = [make_bar(index, 1.0 if index < 3 else 1.2) for index in range(6)]
    for bar in bars:
        await risk.send(bar)
    late = _order("ord-late").model_copy(update={"signal_time": bars[2].closed_at})
    # Act: the strategy, running behind, asks only now
    await risk.send(late)
    # Assert: judged at the close it was decided on (no fat-finger rejection)
    assert _rejected_rules(risk) == []
    assert len(risk.of_type(OrderApproved)) == 1


async def test_a_request_ahead_of_risks_bars_is_priced_from_the_stored_bar(
    risk: Harness, ledger: tuple[Store, str]
) -> None:
    # Arrange: risk saw bars up to a close of 1.0; ingestion already stored one at 1.2
    seen = [make_bar(index, 1.0) for index in range(3)]
    for bar in seen:
        await risk.send(bar)
    ahead = make_bar(3, 1.2)
    store, _url = ledger
    async with store.transaction() as unit:
        await unit.ohlcv.upsert_many([*seen, ahead])
    request = _order("ord-ahead").model_copy(
        update={"signal_time": ahead.closed_at, "reference_price": 1.2}
    )
    # Act
    await risk.send(request)
    # Assert: priced at the stored 1.2, not risk's stale 1.0
    assert _rejected_rules(risk) == []
    assert len(risk.of_type(OrderApproved)) == 1
