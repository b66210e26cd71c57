"""Five services as separate processes on RabbitMQ and PostgreSQL trade the sample exactly as
the embedded process does; malformed messages on every queue are dead-lettered meanwhile."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import aio_pika
import pytest
from sqlalchemy import create_engine, text

from tai_cli.embedded import EmbeddedOptions, run_replay
from tai_events.topics import (
    CONTROL_EXCHANGE,
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    DEAD_LETTER_QUEUE_HEADER,
    DEAD_LETTER_REASON_HEADER,
    EVENTS_EXCHANGE,
)
from tai_ingestion.samples import sample_path
from tests.e2e.conftest import Broker, ServiceProcesses, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600)]

SMA_CROSS_ALONE = '["sma_cross"]'
FILL_COLUMNS = ("fill_id", "order_id", "side", "quantity", "price", "commission", "filled_at")

# One malformed message for every queue a service consumes (exchange, routing key, body).
MALFORMED = [
    (EVENTS_EXCHANGE, "market.bar.1h.EURUSD", b'{"symbol": "EURUSD", "open": "NaN"}', "BarClosed"),
    (EVENTS_EXCHANGE, "order.requested", b"\xff\xfe not json", "OrderRequested"),
    (EVENTS_EXCHANGE, "order.approved", b'{"order_id": 1}', "OrderApproved"),
    (EVENTS_EXCHANGE, "execution.fill", b"[]", "FillExecuted"),
    (EVENTS_EXCHANGE, "order.cancelled", b"{}", "OrderStatusChanged"),
    (CONTROL_EXCHANGE, "control.halt", b'{"requested_by": ""}', "HaltTrading"),
]
EXPECTED_DEAD_LETTER_QUEUES = {
    "tai.strategy.bars",
    "tai.risk.market",
    "tai.execution.market",
    "tai.risk.orders",
    "tai.execution.approvals",
    "tai.risk.fills",
    "tai.risk.order-states",
    "tai.risk.control",
}


def _wire_headers(message_type: str) -> dict[str, object]:
    return {
        "message_id": f"malformed-{message_type}",
        "type": message_type,
        "schema_version": 1,
        "occurred_at": "2017-04-19T09:00:00+00:00",
        "correlation_id": f"malformed-{message_type}",
        "producer": "attacker",
    }


async def _publish_malformed(url: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for exchange_name, routing_key, body, message_type in MALFORMED:
            exchange = await channel.get_exchange(exchange_name)
            await exchange.publish(
                aio_pika.Message(body, headers=_wire_headers(message_type)),  # type: ignore[arg-type]
                routing_key=routing_key,
            )


async def _observe_dead_letters(url: str, queue_name: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(DEAD_LETTER_EXCHANGE)
        queue = await channel.declare_queue(queue_name, durable=True)
        await queue.bind(exchange, routing_key="#")


async def _read_dead_letters(url: str, queue_name: str) -> list[dict[str, object]]:
    letters = []
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            letters.append(dict(message.headers))
    return letters


def _ledger_fills(database_url: str) -> list[tuple[object, ...]]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(f"SELECT {', '.join(FILL_COLUMNS)} FROM fills ORDER BY filled_at, fill_id")
        ).all()
    engine.dispose()
    return [_normalise(row) for row in rows]


def _normalise(row: tuple[object, ...] | list[object]) -> tuple[object, ...]:
    fill_id, order_id, side, quantity, price, commission, filled_at = row
    return (
        fill_id,
        order_id,
        side,
        round(float(quantity), 9),
        round(float(price), 12),  # type: ignore[arg-type]
        round(float(commission), 9),
        filled_at.isoformat(),  # type: ignore[union-attr, arg-type]
    )


def _wait_until_quiet(broker: Broker, database_url: str, timeout: float) -> None:
    """Wait until every queue is empty and the ledger stops changing."""
    engine = create_engine(database_url)
    deadline = time.monotonic() + timeout
    previous: tuple[int, int] | None = None
    try:
        while time.monotonic() < deadline:
            depths = broker.queue_depths()
            busy = {
                name: depth
                for name, depth in depths.items()
                if depth and not name.startswith("test.") and name != DEAD_LETTER_QUEUE
            }
            with engine.connect() as connection:
                state = (
                    int(connection.execute(text("SELECT count(*) FROM fills")).scalar_one()),
                    int(
                        connection.execute(
                            text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                        ).scalar_one()
                    ),
                )
            if not busy and state == previous and state[1] == 0:
                return
            previous = state
            time.sleep(1.0)
    finally:
        engine.dispose()
    pytest.fail(
        f"pipeline did not settle in {timeout}s: queues {broker.queue_depths()}, "
        f"(fills, unpublished outbox) = {previous}"
    )


def test_five_processes_on_rabbitmq_fill_exactly_like_the_embedded_run(
    services: ServiceProcesses,
    broker: Broker,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Arrange: the consuming services, each its own process; a queue observing dead letters.
    # sma_cross alone, whose decisions depend on the bars and not on the account: with the
    # portfolio, risk sizes from the equity it has seen, and how far fills lag behind the
    # requests differs between transports (see the portfolio test below).
    monkeypatch.setenv("STRATEGY_STRATEGIES", SMA_CROSS_ALONE)
    for name in ("risk", "execution", "strategy"):
        services.start(name, {"STRATEGY_STRATEGIES": SMA_CROSS_ALONE})
        services.wait_ready(name)
    api_port, console_port = free_port(), free_port()
    services.start(
        "gateway",
        {
            "GATEWAY_API_PORT": str(api_port),
            "GATEWAY_CONSOLE_PORT": str(console_port),
            "GATEWAY_SESSION_SECRET": "e2e-session-secret-" + "x" * 40,
        },
    )
    services.wait_ready("gateway", port=api_port)
    asyncio.run(_observe_dead_letters(broker.url, "test.dead-letters"))
    asyncio.run(_publish_malformed(broker.url))

    # Act: replay the bundled sample through ingestion, then let the pipeline settle
    services.start(
        "ingestion",
        {
            "INGESTION_REPLAY_FILE": str(sample_path("EURUSD.csv")),
            "INGESTION_EXIT_WHEN_DONE": "true",
        },
    )
    assert services.wait_exit("ingestion", timeout=300) == 0, services.log("ingestion")
    _wait_until_quiet(broker, database_url, timeout=180)
    distributed = _ledger_fills(database_url)
    embedded_result = asyncio.run(
        run_replay(EmbeddedOptions(data_directory=tmp_path / "embedded", serve_console=False))
    )
    embedded = [
        _normalise([getattr(fill, column) for column in FILL_COLUMNS])
        for fill in embedded_result.fills
    ]
    letters = asyncio.run(_read_dead_letters(broker.url, "test.dead-letters"))
    with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=5) as response:
        gateway_health = json.loads(response.read())

    # Assert: fill for fill the same ledger
    assert len(embedded) > 50
    assert distributed == embedded
    # every consuming queue dead-lettered its malformed message with a reason
    dead_lettered_queues = {str(letter[DEAD_LETTER_QUEUE_HEADER]) for letter in letters}
    assert dead_lettered_queues >= EXPECTED_DEAD_LETTER_QUEUES
    assert all(str(letter[DEAD_LETTER_REASON_HEADER]) for letter in letters)
    # ... and every service kept serving and stops gracefully
    assert gateway_health["status"] == "ok"
    for name in ("risk", "execution", "strategy", "gateway"):
        assert services.processes[name].poll() is None, services.log(name)
    codes = services.stop_all()
    assert all(code == 0 for code in codes.values()), codes


def _ledger_orders(database_url: str) -> list[tuple[str, str, str, str | None, bool]]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT order_id, strategy, state, rejected_by, reduce_only FROM orders "
                "WHERE requested_quantity IS NULL OR reduce_only ORDER BY order_id"
            )
        ).all()
    engine.dispose()
    return [(str(a), str(b), str(c), d, bool(e)) for a, b, c, d, e in rows]


def test_the_portfolio_on_rabbitmq_trades_every_strategy_and_exits_only_what_it_holds(
    services: ServiceProcesses, broker: Broker, database_url: str, tmp_path: Path
) -> None:
    # Arrange: the default portfolio in separate processes (no inference: ml_driven waits
    # for predictions that never come, as in the embedded run without inference)
    for name in ("risk", "execution", "strategy"):
        services.start(name)
        services.wait_ready(name)

    # Act
    services.start(
        "ingestion",
        {
            "INGESTION_REPLAY_FILE": str(sample_path("EURUSD.csv")),
            "INGESTION_EXIT_WHEN_DONE": "true",
        },
    )
    assert services.wait_exit("ingestion", timeout=300) == 0, services.log("ingestion")
    _wait_until_quiet(broker, database_url, timeout=240)
    distributed = _ledger_orders(database_url)
    embedded_result = asyncio.run(
        run_replay(EmbeddedOptions(data_directory=tmp_path / "embedded", serve_console=False))
    )
    assert embedded_result.fills

    # Assert: every bar-driven strategy filled entries and exits ...
    filled = {strategy for _, strategy, state, _, _ in distributed if state == "FILLED"}
    assert {"scalping", "intraday", "swing"} <= filled
    # ... and the strategies decided the same entries on RabbitMQ as in one process
    entries = {order_id for order_id, _, _, _, reduce_only in distributed if not reduce_only}
    engine = create_engine(f"sqlite:///{tmp_path / 'embedded' / 'embedded.sqlite'}")
    with engine.connect() as connection:
        embedded_entries = {
            str(row[0])
            for row in connection.execute(
                text("SELECT order_id FROM orders WHERE requested_quantity IS NULL")
            )
        }
        refused_exits = connection.execute(
            text("SELECT count(*) FROM orders WHERE rejected_by = 'reduce_only'")
        ).scalar_one()
    engine.dispose()
    assert entries == embedded_entries
    # In one process no exit is ever asked for a position its strategy does not hold. (On
    # RabbitMQ risk checks an exit against the positions it has projected so far, and a bracket
    # leg's fill can reach risk after a later exit of the same strategy: risk may then refuse
    # that exit; closing the gap needs risk to decide as of the signal, see issue 15's note.)
    assert refused_exits == 0
    codes = services.stop_all()
    assert all(code == 0 for code in codes.values()), codes
