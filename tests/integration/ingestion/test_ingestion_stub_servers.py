"""Network sources against local stub servers; the data commands against PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tai_core.clock import FakeClock
from tai_events.market import Timeframe
from tai_ingestion.cli import data_app
from tai_ingestion.errors import RateLimitedError, SourceTimeoutError
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.sources.alphavantage import AlphaVantageSource
from tai_ingestion.sources.base import JsonHttpClient
from tai_ingestion.sources.ig import IgRestClient, IgSource
from tai_store import Store, create_database_if_missing, drop_database_if_exists
from tai_store.ratelimit import InProcessRateLimiter
from tests import ig_responses

pytestmark = pytest.mark.integration

T0 = datetime(2024, 1, 8, 10, 0, tzinfo=UTC)


def alpha_vantage_payload() -> dict[str, object]:
    return {
        "Meta Data": {"2. From Symbol": "EUR", "3. To Symbol": "USD", "7. Time Zone": "UTC"},
        "Time Series FX (60min)": {
            (T0 + timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S"): {
                "1. open": "1.0950",
                "2. high": "1.0960",
                "3. low": "1.0940",
                "4. close": "1.0955",
            }
            for h in range(3)
        },
    }


@pytest.fixture
async def stub_server() -> AsyncIterator[tuple[str, dict[str, object]]]:
    """An HTTP server on 127.0.0.1 (free port) whose behaviour the test scripts."""
    behaviour: dict[str, object] = {"mode": "ok"}

    async def query(request: web.Request) -> web.StreamResponse:
        mode = behaviour["mode"]
        if mode == "rate_limited":
            return web.Response(status=429, headers={"Retry-After": "60"})
        if mode == "slow":
            await asyncio.sleep(2)
        assert request.query["apikey"] == "key"
        return web.json_response(alpha_vantage_payload())

    async def session(request: web.Request) -> web.StreamResponse:
        assert request.headers["X-IG-API-KEY"] == "key"
        return web.json_response(
            ig_responses.session_body(), headers={"CST": "c", "X-SECURITY-TOKEN": "x"}
        )

    async def applications(request: web.Request) -> web.StreamResponse:
        assert request.headers["Version"] == "1"
        return web.json_response(ig_responses.applications_body("key"))

    async def prices(request: web.Request) -> web.StreamResponse:
        assert request.headers["CST"] == "c"
        if request.match_info["epic"] != "CS.D.EURUSD.MINI.IP":
            return web.json_response(
                ig_responses.error_body(ig_responses.EPIC_NOT_FOUND[1]), status=404
            )
        if behaviour["mode"] == "historical_allowance_spent":
            status, code = ig_responses.HISTORICAL_ALLOWANCE
            return web.json_response(ig_responses.error_body(code), status=status)
        return web.json_response(
            ig_responses.prices_body([ig_responses.price_point(T0, 1.095)], expiry_seconds=3600)
        )

    app = web.Application()
    app.router.add_get("/query", query)
    app.router.add_post("/gateway/deal/session", session)
    app.router.add_get("/gateway/deal/operations/application", applications)
    app.router.add_get("/gateway/deal/prices/{epic}", prices)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", behaviour
    await runner.cleanup()


async def test_alpha_vantage_over_real_http_then_429(
    stub_server: tuple[str, dict[str, object]],
) -> None:
    base_url, behaviour = stub_server
    http = JsonHttpClient(
        "alpha_vantage", base_url, timeout_seconds=0.5, retries=2, backoff_seconds=0
    )
    source = AlphaVantageSource(http, "key", InstrumentMap.with_overrides(), FakeClock(T0))
    rows = await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=3))
    assert [row.timestamp for row in rows] == [T0 + timedelta(hours=h) for h in range(3)]
    behaviour["mode"] = "rate_limited"
    with pytest.raises(RateLimitedError) as raised:
        await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=3))
    assert raised.value.retry_after_seconds == 60
    behaviour["mode"] = "slow"
    with pytest.raises(SourceTimeoutError):
        await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=3))
    await http.close()


async def test_ig_over_real_http_within_its_allowances(
    stub_server: tuple[str, dict[str, object]],
) -> None:
    # Arrange
    base_url, behaviour = stub_server
    http = JsonHttpClient("ig", f"{base_url}/gateway/deal", backoff_seconds=0)
    clock = FakeClock(T0)
    client = IgRestClient(
        http, SecretStr("key"), "user", SecretStr("pw"), limiter=InProcessRateLimiter(clock)
    )
    source = IgSource(client, InstrumentMap.with_overrides(), clock)
    # Act
    rows = await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1))
    behaviour["mode"] = "historical_allowance_spent"
    with pytest.raises(RateLimitedError) as raised:
        await source.fetch_history("EURUSD", Timeframe.H1, T0, T0 + timedelta(hours=1))
    # Assert: mid prices; the allowance rests until the reset the last answer announced
    assert [(row.timestamp, row.close) for row in rows] == [(T0, pytest.approx(1.0955))]
    assert client.allowances.account_overall == 30
    assert source.historical_allowance is not None
    assert raised.value.retry_after_seconds == 3600
    await http.close()


@pytest.fixture
def database_url() -> Iterator[str]:
    base = make_url(
        os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    )
    url = base.set(
        drivername="postgresql+psycopg", database=f"tai_test_{uuid.uuid4().hex}"
    ).render_as_string(hide_password=False)
    create_database_if_missing(url)
    yield url
    drop_database_if_exists(url)


def test_import_command_stores_a_file_idempotently(database_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text(
        ",Open,High,Low,Close,Volume\n"
        "2024-01-08 10:00:00,1.1,1.2,1.0,1.15,10\n"
        "2024-01-08 11:00:00,1.15,1.2,1.1,1.12,10\n"
        "2024-01-08 11:00:00,1.15,1.2,1.1,1.12,10\n"
    )
    runner = CliRunner()
    environment = {"DATABASE_URL": database_url}
    for _ in range(2):
        result = runner.invoke(
            data_app,
            ["import", str(csv), "--symbol", "EURUSD", "--timeframe", "1h"],
            env=environment,
        )
        assert result.exit_code == 0, result.output
        assert "stored 2 bars" in result.output
        assert "duplicate" in result.output

    async def stored() -> int:
        store = Store(database_url)
        try:
            async with store.transaction() as unit:
                return len(await unit.ohlcv.range("EURUSD", Timeframe.H1))
        finally:
            await store.close()

    assert asyncio.run(stored()) == 2


def test_backfill_command_fetches_from_alpha_vantage_stub_into_postgres(database_url: str) -> None:
    # The stub server runs in its own thread's loop; the command runs its own asyncio loop.
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    address: dict[str, str] = {}

    async def serve() -> None:
        async def query(_: web.Request) -> web.StreamResponse:
            return web.json_response(alpha_vantage_payload())

        app = web.Application()
        app.router.add_get("/query", query)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        address["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        ready.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(serve()), loop.run_forever()), daemon=True
    )
    thread.start()
    assert ready.wait(5)
    environment = {
        "DATABASE_URL": database_url,
        "INGESTION_ALPHA_VANTAGE_API_KEY": "key",
        "INGESTION_ALPHA_VANTAGE_BASE_URL": address["url"],
    }
    arguments = [
        "backfill",
        "--symbol",
        "EURUSD",
        "--timeframe",
        "1h",
        "--source",
        "alpha_vantage",
        "--start",
        "2024-01-08T10:00:00",
        "--end",
        "2024-01-08T13:00:00",
    ]
    try:
        first = CliRunner().invoke(data_app, arguments, env=environment)
        assert first.exit_code == 0, first.output
        assert "stored 3 bars in 1 requests" in first.output
        second = CliRunner().invoke(data_app, arguments, env=environment)
        assert "stored 0 bars in 0 requests (3 already stored)" in second.output
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
