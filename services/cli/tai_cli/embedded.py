"""The embedded system: every service in one process, in-memory bus, SQLite, bundled data."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tai_bus import MEMORY_URL, InMemoryBus
from tai_cli.keys import (
    OPERATOR_PRIVATE_KEY_FILE,
    OPERATOR_PUBLIC_KEY_FILE,
    ensure_key_files,
    ensure_secret,
)
from tai_core.clock import Clock, SystemClock
from tai_core.files import ensure_private_directory
from tai_events.market import Timeframe
from tai_events.ml import DEFAULT_TRADE_PLAN
from tai_execution.app import create_app as create_execution
from tai_execution.config import ExecutionSettings
from tai_ingestion.app import IngestionApp, ReplayReport
from tai_ingestion.app import create_app as create_ingestion
from tai_ingestion.config import IngestionSettings
from tai_ingestion.samples import sample_path
from tai_risk.app import create_app as create_risk
from tai_risk.config import RiskSettings
from tai_store.database import Store
from tai_store.queries import strategy_summary
from tai_store.records import Fill
from tai_strategy.app import create_app as create_strategy
from tai_strategy.config import StrategySettings
from tai_telemetry.metrics import Telemetry

if TYPE_CHECKING:
    from tai_gateway.app import GatewayApp
    from tai_gateway.config import GatewaySettings

EMBEDDED_DATABASE = "embedded.sqlite"
PRODUCER = "embedded"


@dataclass(frozen=True)
class EmbeddedOptions:
    """How to run the embedded system."""

    data_directory: Path = Path(".data")
    replay_file: Path | None = None
    symbol: str = "EURUSD"
    timeframe: Timeframe = Timeframe.H1
    replay_speed: float = 0.0
    serve_console: bool = True
    api_port: int = 8000
    console_port: int = 8050
    host: str = "127.0.0.1"
    reset: bool = False
    commission_rate: float = 0.0002
    initial_cash: float = 100_000.0
    sma_fast: int = 10
    sma_slow: int = 30
    quantity: float = 10_000.0
    inference: bool = False
    """Run the optional ML inference component (see ``EmbeddedInference``)."""


@dataclass
class EmbeddedResult:
    """What an embedded replay produced."""

    replay: ReplayReport
    fills: list[Fill]
    final_equity: float | None
    admin_password: str | None = None
    urls: dict[str, str] = field(default_factory=dict)


def database_url(options: EmbeddedOptions) -> str:
    """Return the SQLite URL of the embedded ledger."""
    return f"sqlite+aiosqlite:///{(options.data_directory / EMBEDDED_DATABASE).resolve()}"


class EmbeddedSystem:
    """Composes ingestion, strategy, risk, execution (and the gateway) on one in-memory bus."""

    def __init__(self, options: EmbeddedOptions, *, clock: Clock | None = None) -> None:
        self.options = options
        self.clock = clock or SystemClock()
        self.telemetry = Telemetry(service=PRODUCER)
        if options.reset and options.data_directory.exists():
            shutil.rmtree(options.data_directory)
        # Ledger (password hashes), keys and the session secret live here: owner-only, even
        # when the directory already existed with a looser mode.
        ensure_private_directory(options.data_directory)
        keys = ensure_key_files(options.data_directory / "keys")
        self.operator_keys = ensure_key_files(
            options.data_directory / "keys",
            private_name=OPERATOR_PRIVATE_KEY_FILE,
            public_name=OPERATOR_PUBLIC_KEY_FILE,
        )
        """The break-glass key pair: `trading-ai control halt` works without any login."""
        self.store = Store(database_url(options))
        self.bus = InMemoryBus(
            PRODUCER, clock=self.clock, telemetry=self.telemetry, deterministic=True
        )
        ledger_url = database_url(options)
        self.risk = create_risk(
            RiskSettings(
                approval_private_key=keys.private_key.read_text(encoding="ascii"),
                initial_equity=options.initial_cash,
                outbox_sweep_seconds=0,
                limits_announce_seconds=0,
                database_url=ledger_url,
                amqp_url=MEMORY_URL,
            ),
            bus=self.bus,
            store=self.store,
            clock=self.clock,
            telemetry=self.telemetry,
        )
        self.execution = create_execution(
            ExecutionSettings(
                approval_public_keys=keys.public_key.read_text(encoding="ascii"),
                initial_cash=options.initial_cash,
                commission_rate=options.commission_rate,
                timeframe=options.timeframe,
                outbox_sweep_seconds=0,
                database_url=ledger_url,
                amqp_url=MEMORY_URL,
            ),
            bus=self.bus,
            store=self.store,
            clock=self.clock,
            telemetry=self.telemetry,
        )
        self.strategy = create_strategy(
            StrategySettings(
                timeframe=options.timeframe,
                sma_fast=options.sma_fast,
                sma_slow=options.sma_slow,
                quantity=options.quantity,
                announce_seconds=0,
                database_url=ledger_url,
                amqp_url=MEMORY_URL,
            ),
            bus=self.bus,
            store=self.store,
            clock=self.clock,
            telemetry=self.telemetry,
        )
        self.ingestion: IngestionApp = create_ingestion(
            IngestionSettings(
                replay_file=options.replay_file or sample_path(f"{options.symbol}.csv"),
                symbol=options.symbol,
                timeframe=options.timeframe,
                replay_speed=options.replay_speed,
                database_url=ledger_url,
                amqp_url=MEMORY_URL,
            ),
            bus=self.bus,
            store=self.store,
            clock=self.clock,
            telemetry=self.telemetry,
        )
        self.gateway: GatewayApp | None = None
        self._gateway_task: asyncio.Task[None] | None = None
        self.admin_password: str | None = None
        self.inference: EmbeddedInference | None = (
            EmbeddedInference(self) if options.inference else None
        )

    async def start(self) -> None:
        """Migrate the ledger, start the bus and every service, and the console if asked."""
        await self.store.migrate()
        await self.bus.start()
        if self.options.serve_console:
            # first: it hears what the services announce as they start (limits, strategies)
            await self._start_gateway()
        for app in (self.risk, self.execution, self.strategy):
            await app.start()
        if self.inference is not None:
            await self.inference.start()
        # deliver what the services announced as they started (risk's limits, the strategies)
        await self.bus.drain()

    def gateway_settings(self, session_secret: str) -> GatewaySettings:
        """Return the embedded gateway's settings (other GATEWAY_* come from the environment).

        The session cookie's ``Secure`` flag is left to the settings: on whenever the console
        binds beyond loopback (``--host 0.0.0.0``), off only on 127.0.0.1 where plain HTTP
        must work.
        """
        from tai_gateway.config import GatewaySettings  # noqa: PLC0415

        return GatewaySettings(
            session_secret=session_secret,
            operator_public_keys=self.operator_keys.public_key.read_text(encoding="ascii"),
            api_host=self.options.host,
            api_port=self.options.api_port,
            console_host=self.options.host,
            console_port=self.options.console_port,
            database_url=database_url(self.options),
            amqp_url=MEMORY_URL,
        )

    async def _start_gateway(self) -> None:
        from tai_gateway.app import create_app as create_gateway  # noqa: PLC0415
        from tai_gateway.users import add_user, generate_password  # noqa: PLC0415

        secret = ensure_secret(
            self.options.data_directory / "session-secret", lambda: secrets.token_urlsafe(48)
        )
        async with self.store.transaction() as unit:
            has_admin = await unit.users.get("admin") is not None
        if not has_admin:
            self.admin_password = generate_password()
            await add_user(self.store, "admin", self.admin_password, "admin", clock=self.clock)
        settings = self.gateway_settings(secret)
        gateway = create_gateway(
            settings, bus=self.bus, store=self.store, clock=self.clock, telemetry=self.telemetry
        )
        await gateway.start()
        self.gateway = gateway
        self._gateway_task = asyncio.create_task(gateway.serve(), name="gateway")

    async def replay(self, progress: Callable[[int, int], None] | None = None) -> ReplayReport:
        """Replay the data; after each bar, deliver everything it caused before the next."""

        async def settle(_bar: object) -> None:
            await self.bus.drain()

        return await self.ingestion.replay(
            self.ingestion.load(), after_bar=settle, progress=progress
        )

    async def result(self, report: ReplayReport) -> EmbeddedResult:
        """Return the fills and final equity in the ledger."""
        async with self.store.transaction() as unit:
            fills = await unit.fills.list()
            snapshots = await unit.snapshots.list(self.execution.settings.account)
        urls: dict[str, str] = {}
        if self.gateway is not None:
            urls = {
                "console": f"http://{self.options.host}:{self.options.console_port}/",
                "api": f"http://{self.options.host}:{self.options.api_port}/api/docs",
            }
        return EmbeddedResult(
            replay=report,
            fills=fills,
            final_equity=snapshots[-1].equity if snapshots else None,
            admin_password=self.admin_password,
            urls=urls,
        )

    async def strategy_summary(self) -> pd.DataFrame:
        """Return what happened to each strategy's orders, from the ledger."""
        return await asyncio.to_thread(strategy_summary, self.store.sync_engine())

    async def serve_forever(self) -> None:
        """Keep the console up until the process is interrupted."""
        if self._gateway_task is not None:
            await self._gateway_task

    async def stop(self) -> None:
        """Stop the console, the services and the bus, and close the ledger."""
        if self.gateway is not None:
            await self.gateway.stop()
        if self._gateway_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._gateway_task
        if self.inference is not None:
            await self.inference.stop()
        for app in (self.strategy, self.execution, self.risk):
            await app.stop()
        await self.bus.close()
        await self.store.close()


# ---- optional component: ML inference ---------------------------------------------------
# Kept apart from the trading pipeline: predictions go to ml.prediction.<SYMBOL>, which no
# embedded trading service consumes, so fills are the same with or without it.


DEMO_TRADE_PLAN = DEFAULT_TRADE_PLAN.model_copy(update={"probability_threshold": 0.4})
"""The demo model's plan: the default exits, traded from 0.4 (three classes: 1/3 is chance).

An unvalidated, calibrated demo rarely reaches the 0.5 of a validated plan, and ml_driven would
never trade in `make run`; `trading-ai train` registers models for the plan they validated."""


class EmbeddedInference:
    """The inference service inside the embedded system, with a demo model when none exists.

    On start it looks for a production model of the replayed symbol and timeframe; if there
    is none it fits a small XGBoost model on the replay data (no walk-forward evaluation, a
    few seconds), registers and promotes it. The ML libraries are imported only here.
    """

    def __init__(self, system: EmbeddedSystem) -> None:
        from tai_inference.app import create_app as create_inference  # noqa: PLC0415
        from tai_inference.config import InferenceSettings  # noqa: PLC0415

        self.system = system
        options = system.options
        self.note: str | None = None
        self.app = create_inference(
            InferenceSettings(
                timeframe=options.timeframe,
                symbols=(options.symbol,),
                database_url=database_url(options),
                amqp_url=MEMORY_URL,
            ),
            bus=system.bus,
            store=system.store,
            clock=system.clock,
            telemetry=system.telemetry,
        )

    async def _ensure_demo_model(self) -> None:
        from tai_inference.cli import load_bars  # noqa: PLC0415
        from tai_inference.registry import promote_model, register_model  # noqa: PLC0415
        from tai_inference.training import TrainingOptions, train_model  # noqa: PLC0415
        from tai_store.ml_repository import MlModelRepository  # noqa: PLC0415

        options, store = self.system.options, self.system.store
        async with store.transaction() as unit:
            existing = await MlModelRepository(unit.session).production(
                options.symbol, options.timeframe.value
            )
        if existing is not None:
            self.note = f"inference: serving registered model {existing.model_id}"
            return
        path = options.replay_file or sample_path(f"{options.symbol}.csv")
        training = TrainingOptions(
            symbol=options.symbol,
            timeframe=options.timeframe.value,
            evaluate=False,
            max_rounds=100,
            early_stopping_rounds=15,
            plan=DEMO_TRADE_PLAN,
        )
        try:
            result = await asyncio.to_thread(
                train_model, load_bars(path), training, created_at=self.system.clock.now()
            )
        except ValueError as error:
            self.note = f"inference: no model (demo training impossible: {error})"
            return
        await register_model(store, result.record)
        await promote_model(
            store, None, result.record.model_id, clock=self.system.clock, promoted_by="embedded"
        )
        self.note = (
            f"inference: trained demo model {result.record.model_id} on {path.name} "
            "(in-sample demo; use `trading-ai train` for a validated model)"
        )

    async def start(self) -> None:
        """Train the demo model if none is registered, then start consuming bars."""
        await self._ensure_demo_model()
        await self.app.start()

    async def stop(self) -> None:
        """Stop the inference service."""
        await self.app.stop()


# ---- end of the optional ML inference component --------------------------------------------


async def run_replay(options: EmbeddedOptions) -> EmbeddedResult:
    """Run the embedded system over the data once, without the console, and return the result."""
    system = EmbeddedSystem(options)
    await system.start()
    try:
        report = await system.replay()
        return await system.result(report)
    finally:
        await system.stop()
