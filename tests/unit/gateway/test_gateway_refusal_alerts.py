"""Refused control calls raise alerts: one per caller and action a minute, a cap in all."""

from __future__ import annotations

from datetime import timedelta

import pytest
from gateway_support import T0
from prometheus_client import CollectorRegistry, Counter

from tai_bus import Binding, InMemoryBus, Subscription
from tai_core.clock import FakeClock
from tai_events import AlertRaised, Envelope, Message
from tai_events.topics import ALL_ALERTS
from tai_gateway.alerts import DENIED_CODE, UNAUTHENTICATED_CODE, RefusalAlerts


class _Alerts:
    def __init__(self, bus: InMemoryBus, clock: FakeClock, **limits: int) -> None:
        self.registry = CollectorRegistry()
        counter = Counter(
            "tai_gateway_refusal_alerts", "test", ["code", "outcome"], registry=self.registry
        )
        self.bus = bus
        self.clock = clock
        self.alerts = RefusalAlerts(bus, clock, counter, **limits)
        self.received: list[AlertRaised] = []

    async def subscribe(self) -> None:
        async def record(envelope: Envelope[Message]) -> None:
            assert isinstance(envelope.message, AlertRaised)
            self.received.append(envelope.message)

        await self.bus.subscribe(Subscription("test.alerts", [Binding(ALL_ALERTS)], record))

    async def refuse(
        self, caller: str = "victor", action: str = "halt_trading", code: str = DENIED_CODE
    ) -> bool:
        raised = await self.alerts.refused(
            code=code, caller=caller, action=action, channel="api", details={"role": "viewer"}
        )
        await self.bus.drain()
        return raised

    def count(self, outcome: str, code: str = DENIED_CODE) -> float:
        value = self.registry.get_sample_value(
            "tai_gateway_refusal_alerts_total", {"code": code, "outcome": outcome}
        )
        return value or 0.0


@pytest.fixture
async def alerts(bus: InMemoryBus, clock: FakeClock) -> _Alerts:
    made = _Alerts(bus, clock)
    await made.subscribe()
    return made


async def test_the_first_refusal_raises_a_warning_alert_naming_caller_and_action(
    alerts: _Alerts,
) -> None:
    assert await alerts.refuse()
    [alert] = alerts.received
    assert alert.severity.value == "warning"
    assert (alert.source, alert.code, alert.raised_at) == ("gateway", DENIED_CODE, T0)
    assert alert.details == {
        "caller": "victor",
        "action": "halt_trading",
        "channel": "api",
        "role": "viewer",
    }
    assert "victor" in alert.message
    assert "halt_trading" in alert.message


async def test_repeats_within_a_minute_are_counted_not_sent(alerts: _Alerts) -> None:
    outcomes = [await alerts.refuse() for _ in range(10)]
    assert outcomes == [True] + [False] * 9
    assert len(alerts.received) == 1
    assert (alerts.count("raised"), alerts.count("suppressed")) == (1, 9)


async def test_a_minute_later_the_same_caller_and_action_alert_again(
    alerts: _Alerts, clock: FakeClock
) -> None:
    await alerts.refuse()
    clock.advance(timedelta(seconds=30))
    assert not await alerts.refuse()
    clock.advance(timedelta(seconds=30))
    assert await alerts.refuse()
    assert len(alerts.received) == 2


async def test_each_caller_and_action_has_its_own_allowance(alerts: _Alerts) -> None:
    assert await alerts.refuse("victor", "halt_trading")
    assert await alerts.refuse("victor", "resume_trading")
    assert await alerts.refuse("tom", "halt_trading")
    assert await alerts.refuse("anonymous@10.0.0.9", "halt_trading", UNAUTHENTICATED_CODE)
    assert not await alerts.refuse("victor", "halt_trading")
    assert len(alerts.received) == 4
    assert alerts.count("raised", UNAUTHENTICATED_CODE) == 1


async def test_many_callers_cannot_flood_past_the_overall_cap(
    bus: InMemoryBus, clock: FakeClock
) -> None:
    capped = _Alerts(bus, clock, in_all=5)
    await capped.subscribe()
    for number in range(50):
        await capped.refuse(f"anonymous@10.0.0.{number}", code=UNAUTHENTICATED_CODE)
    assert len(capped.received) == 5
    assert capped.count("suppressed", UNAUTHENTICATED_CODE) == 45


async def test_a_bus_failure_is_counted_and_does_not_raise(
    bus: InMemoryBus, clock: FakeClock
) -> None:
    alerts = _Alerts(bus, clock)
    await bus.close()  # publishing now fails
    assert not await alerts.alerts.refused(
        code=DENIED_CODE, caller="victor", action="halt_trading", channel="api", details={}
    )
    assert alerts.count("failed") == 1
