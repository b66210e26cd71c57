"""``trading-ai data ...``: backfill history from the sources, import a file into the store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tai_events.market import Timeframe
from tai_ingestion.models import SourceName

if TYPE_CHECKING:
    from tai_ingestion.backfill import BackfillReport
    from tai_ingestion.config import IngestionSettings

# The sources, the store and the validator are imported when a command runs: registering
# these commands (and their --help) imports none of them.

data_app = typer.Typer(help="Market data: backfill history and import files.", no_args_is_help=True)
IMPORT_CHUNK = 1000


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@data_app.command("backfill")
def backfill(
    symbol: Annotated[str, typer.Option(help="system symbol, e.g. EURUSD")],
    start: Annotated[str, typer.Option(help="ISO date/time (UTC when naive)")],
    end: Annotated[str | None, typer.Option(help="ISO date/time; default now")] = None,
    timeframe: Annotated[Timeframe, typer.Option(help="bar timeframe")] = Timeframe.H1,
    source: Annotated[
        list[SourceName] | None, typer.Option(help="sources in priority order (repeatable)")
    ] = None,
) -> None:
    """Fetch the bars the store lacks in [start, end) and upsert them (stored ones are skipped)."""
    import asyncio  # noqa: PLC0415

    from tai_core.settings import load_settings  # noqa: PLC0415
    from tai_ingestion.config import IngestionSettings  # noqa: PLC0415

    overrides: dict[str, object] = {"symbol": symbol, "timeframe": timeframe}
    if source:
        overrides["sources"] = source
    settings = load_settings(IngestionSettings, **overrides)
    start_at = _utc(start)
    end_at = _utc(end) if end else datetime.now(UTC)
    console = Console()
    report = asyncio.run(_backfill(settings, start_at, end_at, console))
    console.print(
        f"stored {report.bars_stored} bars in {report.spans_fetched} requests "
        f"({report.bars_already_stored} already stored); by source {report.by_source}; "
        f"rejected {report.rejected_by_rule or 'none'}"
    )


async def _backfill(
    settings: IngestionSettings, start: datetime, end: datetime, console: Console
) -> BackfillReport:
    from datetime import timedelta  # noqa: PLC0415

    from tai_bus.memory import InMemoryBus  # noqa: PLC0415
    from tai_core.clock import SystemClock  # noqa: PLC0415
    from tai_ingestion.backfill import Backfiller  # noqa: PLC0415
    from tai_ingestion.calendar import calendar_for  # noqa: PLC0415
    from tai_ingestion.factory import build_sources  # noqa: PLC0415
    from tai_ingestion.failover import FailoverSource  # noqa: PLC0415
    from tai_ingestion.instruments import InstrumentMap  # noqa: PLC0415
    from tai_ingestion.metrics import IngestionMetrics  # noqa: PLC0415
    from tai_ingestion.validation import Validator  # noqa: PLC0415
    from tai_store.database import Store  # noqa: PLC0415
    from tai_telemetry.metrics import Telemetry  # noqa: PLC0415

    clock = SystemClock()
    metrics = IngestionMetrics.create(Telemetry("ingestion-cli").registry)
    instruments = InstrumentMap.with_overrides(settings.instruments)
    calendar = calendar_for(instruments.get(settings.symbol))
    async with build_sources(settings, instruments, clock, metrics) as sources:
        if not sources.polling:
            raise typer.BadParameter("no usable source (check credentials and --source)")
        store = Store(settings.database_url)
        try:
            await store.migrate()
            async with InMemoryBus("ingestion-cli", clock=clock) as bus:
                failover = FailoverSource(
                    sources.polling,
                    validator=Validator(settings.validation, calendar=calendar, metrics=metrics),
                    bus=bus,
                    clock=clock,
                    metrics=metrics,
                    instruments=instruments,
                    cooldown=timedelta(seconds=settings.failover_cooldown_seconds),
                    max_rejected_fraction=settings.max_rejected_fraction,
                )
                with _progress(console) as progress:
                    task = progress.add_task(f"backfill {settings.symbol}", total=None)

                    def advance(done: int, total: int) -> None:
                        progress.update(task, completed=done, total=total)

                    return await Backfiller(failover, store, calendar).run(
                        settings.symbol, settings.timeframe, start, end, progress=advance
                    )
        finally:
            await store.close()


@data_app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet of OHLCV bars", exists=True)],
    symbol: Annotated[str, typer.Option(help="system symbol")] = "EURUSD",
    timeframe: Annotated[Timeframe, typer.Option(help="bar timeframe")] = Timeframe.H1,
) -> None:
    """Validate a file of bars and upsert them into the store (re-importing is harmless)."""
    import asyncio  # noqa: PLC0415

    from tai_core.settings import load_settings  # noqa: PLC0415
    from tai_ingestion.config import IngestionSettings  # noqa: PLC0415

    settings = load_settings(IngestionSettings, symbol=symbol, timeframe=timeframe)
    console = Console()
    stored, rejected = asyncio.run(_import(settings, file, console))
    console.print(f"stored {stored} bars; rejected {rejected or 'none'}")


async def _import(
    settings: IngestionSettings, path: Path, console: Console
) -> tuple[int, dict[str, int]]:
    from tai_ingestion.calendar import calendar_for  # noqa: PLC0415
    from tai_ingestion.instruments import InstrumentMap  # noqa: PLC0415
    from tai_ingestion.replay import load_bars  # noqa: PLC0415
    from tai_ingestion.validation import Validator  # noqa: PLC0415
    from tai_store.database import Store  # noqa: PLC0415

    instruments = InstrumentMap.with_overrides(settings.instruments)
    calendar = (
        calendar_for(instruments.get(settings.symbol)) if settings.symbol in instruments else None
    )
    data = load_bars(
        path,
        symbol=settings.symbol,
        timeframe=settings.timeframe,
        source="import",
        validator=Validator(settings.validation, calendar=calendar),
    )
    store = Store(settings.database_url)
    try:
        await store.migrate()
        with _progress(console) as progress:
            task = progress.add_task(f"import {path.name}", total=len(data.bars))
            for offset in range(0, len(data.bars), IMPORT_CHUNK):
                chunk = data.bars[offset : offset + IMPORT_CHUNK]
                async with store.transaction() as unit:
                    await unit.ohlcv.upsert_many(chunk)
                progress.advance(task, len(chunk))
    finally:
        await store.close()
    return len(data.bars), data.rejected_by_rule()
