"""Risk announces the limits and breaker table it enforces; nobody keeps a copy."""

from __future__ import annotations

from pathlib import Path

from tai_bus import InMemoryBus
from tai_bus.api import Binding, Subscription
from tai_core.clock import FakeClock
from tai_events.base import Message
from tai_events.codec import Envelope
from tai_events.risk import RiskLimitsPublished, TradingState
from tai_events.topics import RISK_LIMITS
from tai_risk.app import create_app
from tai_risk.config import RiskSettings
from tai_store.database import Store
from tai_telemetry.metrics import Telemetry


async def test_risk_publishes_its_limits_and_breakers_on_start(
    tmp_path: Path, private_key_pem: bytes, clock: FakeClock
) -> None:
    # Arrange: a risk service whose settings move two thresholds off their defaults
    url = f"sqlite+aiosqlite:///{tmp_path / 'risk.sqlite'}"
    store = Store(url)
    await store.migrate()
    bus = InMemoryBus("test", clock=clock, deterministic=True)
    settings = RiskSettings(
        approval_private_key=private_key_pem.decode("ascii"),
        database_url=url,
        amqp_url="memory://",
        daily_loss_halt_pct=4.5,
        cvar_confidence=0.99,
        limits_announce_seconds=0,
        outbox_sweep_seconds=0,
    )
    app = create_app(settings, bus=bus, store=store, clock=clock, telemetry=Telemetry("t"))
    seen: list[RiskLimitsPublished] = []

    async def collect(envelope: Envelope[Message]) -> None:
        assert isinstance(envelope.message, RiskLimitsPublished)
        seen.append(envelope.message)

    await bus.subscribe(Subscription("test.limits", [Binding(RISK_LIMITS)], collect))
    await bus.start()
    # Act
    await app.start()
    await bus.drain()
    await app.stop()
    await bus.close()
    await store.close()
    # Assert
    (published,) = seen
    assert published.limits["cvar_confidence"] == 0.99
    assert published.limits["require_market_data"] is True
    daily = next(row for row in published.breakers if row.breaker == "daily_loss")
    assert (daily.threshold, daily.moves_to, daily.lifted_by) == (
        4.5,
        TradingState.HALTED,
        "next session",
    )
    drawdowns = [row for row in published.breakers if row.breaker == "drawdown"]
    assert {row.moves_to for row in drawdowns} == {TradingState.REDUCING, TradingState.HALTED}
