"""An in-process pipeline (ingestion, strategy, risk, execution) on the in-memory bus and SQLite.

Shared by the fuzz, security and observability tests (importable as
``tests.fuzz.pipeline_harness``): the services are the real composition roots, wired exactly as
the embedded process wires them, plus test queues recording approvals, fills, alerts and
dead letters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tai_bus import Binding, DeadLetter, DeadLetterSubscription, InMemoryBus, Subscription
from tai_core.clock import Clock, SystemClock
from tai_core.signing import generate_private_key_pem, public_key_pem
from tai_events import AlertRaised, Envelope, Message
from tai_events.topics import ALL_ALERTS, EXECUTION_FILL, ORDER_APPROVED
from tai_execution.app import ExecutionApp
from tai_execution.app import create_app as create_execution
from tai_execution.config import ExecutionSettings
from tai_ingestion.app import IngestionApp
from tai_ingestion.app import create_app as create_ingestion
from tai_ingestion.config import IngestionSettings
from tai_ingestion.samples import sample_path
from tai_risk.app import RiskApp
from tai_risk.app import create_app as create_risk
from tai_risk.config import RiskSettings
from tai_store import Store
from tai_strategy.app import StrategyApp
from tai_strategy.app import create_app as create_strategy
from tai_strategy.config import StrategySettings
from tai_telemetry.metrics import Telemetry

DEAD_LETTER_OBSERVER = "test.dead-letters"


def sample_slice(directory: Path, bars: int, symbol: str = "EURUSD") -> Path:
    """Write the first ``bars`` rows of a bundled sample to a CSV in ``directory``."""
    lines = sample_path(f"{symbol}.csv").read_text(encoding="utf-8").splitlines()
    path = directory / f"{symbol}-{bars}.csv"
    path.write_text("\n".join(lines[: bars + 1]) + "\n", encoding="utf-8")
    return path


@dataclass
class Recorded:
    """What the test queues saw."""

    approvals: list[Envelope[Message]] = field(default_factory=list)
    fills: list[Envelope[Message]] = field(default_factory=list)
    alerts: list[AlertRaised] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


@dataclass
class MemoryPipeline:
    """The running services, their bus and ledger, and what the test queues recorded."""

    bus: InMemoryBus
    store: Store
    ingestion: IngestionApp
    strategy: StrategyApp
    risk: RiskApp
    execution: ExecutionApp
    telemetry: Telemetry
    private_key_pem: bytes
    recorded: Recorded

    async def replay(self) -> int:
        """Replay the ingestion file, delivering everything each bar causes before the next."""

        async def settle(_bar: object) -> None:
            await self.bus.drain()

        report = await self.ingestion.replay(self.ingestion.load(), after_bar=settle)
        return report.published

    async def ledger(self) -> tuple[int, int]:
        """Return (orders, fills) in the ledger."""
        async with self.store.transaction() as unit:
            fills = await unit.fills.list()
            orders = await unit.orders.list_by_state(
                [
                    "NEW",
                    "SUBMITTED",
                    "PARTIALLY_FILLED",
                    "FILLED",
                    "REJECTED",
                    "CANCELLED",
                    "EXPIRED",
                ]
            )
        return len(orders), len(fills)


@asynccontextmanager
async def memory_pipeline(
    directory: Path,
    *,
    bars: int = 300,
    telemetry: Telemetry | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[MemoryPipeline]:
    """Start the four services on one deterministic in-memory bus over a fresh SQLite ledger."""
    clock = clock or SystemClock()
    telemetry = telemetry or Telemetry(service="test")
    private_pem = generate_private_key_pem()
    url = f"sqlite+aiosqlite:///{directory / 'ledger.sqlite'}"
    store = Store(url)
    await store.migrate()
    bus = InMemoryBus("test", clock=clock, telemetry=telemetry, deterministic=True)
    memory = "memory://"
    risk = create_risk(
        RiskSettings(
            approval_private_key=private_pem.decode(),
            outbox_sweep_seconds=0,
            database_url=url,
            amqp_url=memory,
        ),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
    )
    execution = create_execution(
        ExecutionSettings(
            approval_public_keys=public_key_pem(private_pem).decode(),
            outbox_sweep_seconds=0,
            database_url=url,
            amqp_url=memory,
        ),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
    )
    strategy = create_strategy(
        StrategySettings(database_url=url, amqp_url=memory),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
    )
    ingestion = create_ingestion(
        IngestionSettings(
            replay_file=sample_slice(directory, bars), database_url=url, amqp_url=memory
        ),
        bus=bus,
        store=store,
        clock=clock,
        telemetry=telemetry,
    )
    recorded = Recorded()

    async def record_approval(envelope: Envelope[Message]) -> None:
        recorded.approvals.append(envelope)

    async def record_fill(envelope: Envelope[Message]) -> None:
        recorded.fills.append(envelope)

    async def record_alert(envelope: Envelope[Message]) -> None:
        assert isinstance(envelope.message, AlertRaised)
        recorded.alerts.append(envelope.message)

    async def record_dead_letter(letter: DeadLetter) -> None:
        recorded.dead_letters.append(letter)

    await bus.start()
    await bus.subscribe(Subscription("test.approvals", [Binding(ORDER_APPROVED)], record_approval))
    await bus.subscribe(Subscription("test.fills", [Binding(EXECUTION_FILL)], record_fill))
    await bus.subscribe(Subscription("test.alerts", [Binding(ALL_ALERTS)], record_alert))
    await bus.subscribe_dead_letters(
        DeadLetterSubscription(record_dead_letter, queue=DEAD_LETTER_OBSERVER)
    )
    for app in (risk, execution, strategy):
        await app.start()
    try:
        yield MemoryPipeline(
            bus=bus,
            store=store,
            ingestion=ingestion,
            strategy=strategy,
            risk=risk,
            execution=execution,
            telemetry=telemetry,
            private_key_pem=private_pem,
            recorded=recorded,
        )
    finally:
        for app in (strategy, execution, risk):
            await app.stop()
        await bus.close()
        await store.close()
