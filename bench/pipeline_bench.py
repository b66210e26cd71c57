"""Pipeline benchmark: bars through strategy, risk and execution processes on RabbitMQ.

Measures, on the same broker in the same run:
- raw aio-pika one hop (publisher confirms, a quorum queue, manual acks): throughput, and
  p50/p99 latency at the fixed offered load;
- the pipeline (strategy, risk and execution as separate processes on a throwaway vhost and
  PostgreSQL database): sustained bars/s end to end (every bar handled by all three services),
  and p50/p99 latency bar → approval and bar → fill at the fixed offered load;
- scaling: end-to-end throughput with 1, 10 and 100 symbols.

Writes bench/results-pipeline.json and prints a table. Run it with `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika

from tai_bus import AmqpBus, Binding, Subscription
from tai_core.signing import generate_private_key_pem, public_key_pem
from tai_events import BarClosed, Envelope, Message
from tai_events.codec import make_headers
from tai_events.market import Timeframe
from tai_events.topics import EXECUTION_FILL, ORDER_APPROVED
from tai_ingestion.app import REPLAY_BATCH_BARS
from tai_ingestion.replay import load_bars
from tai_ingestion.samples import sample_path
from tai_store.database import Store, create_database_if_missing, drop_database_if_exists

RESULTS = Path(__file__).resolve().parent / "results-pipeline.json"
AMQP_BASE = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_BASE = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/")
CONSUMERS = ("risk", "execution", "strategy")
_CONSUMED = re.compile(r'^tai_messages_consumed_total\{queue="(?P<queue>[^"]+)"[^}]*\} (?P<v>\S+)$')
BAR_QUEUES = ("tai.strategy.bars", "tai.risk.market", "tai.execution.market")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rabbitmqctl(*arguments: str) -> None:
    executable = shutil.which("rabbitmqctl") or "rabbitmqctl"
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [executable, "-q", *arguments], check=True, capture_output=True, timeout=120
    )


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


@contextmanager
def throwaway_vhost() -> Iterator[str]:
    """Create a vhost for guest on the broker; delete it afterwards."""
    vhost = f"tai-bench-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"{AMQP_BASE.rstrip('/')}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


# ---- raw aio-pika one hop ---------------------------------------------------------------


async def raw_one_hop(url: str, messages: int, rate: float | None) -> dict[str, float]:
    """Publish ``messages`` (confirmed, persistent) to a quorum queue and consume them."""
    connection = await aio_pika.connect(url)
    async with connection:
        publish_channel = await connection.channel(publisher_confirms=True)
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=64)
        name = f"bench.raw.{uuid.uuid4().hex[:8]}"
        queue = await consume_channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        latencies: list[float] = []
        done = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            sent = float(message.headers["sent"])  # type: ignore[arg-type]
            latencies.append(time.perf_counter() - sent)
            await message.ack()
            if len(latencies) == messages:
                done.set()

        await queue.consume(on_message)
        body = b"x" * 300  # about the size of a BarClosed payload
        started = time.perf_counter()
        for index in range(messages):
            if rate:
                await _pace(started, index, rate)
            await publish_channel.default_exchange.publish(
                aio_pika.Message(
                    body,
                    headers={"sent": time.perf_counter()},
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=name,
            )
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - started
        await queue.delete(if_unused=False, if_empty=False)
    return {
        "messages": messages,
        "throughput_per_s": messages / elapsed,
        "latency_p50_ms": percentile(latencies, 0.50) * 1000,
        "latency_p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def _pace(started: float, index: int, rate: float) -> None:
    delay = started + index / rate - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


# ---- the pipeline as processes ---------------------------------------------------------


@dataclass
class Services:
    """Strategy, risk and execution as `trading-ai service` processes."""

    environment: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]]
    ports: dict[str, int]

    @classmethod
    def start(cls, amqp_url: str, database_url: str, logs: Path) -> Services:
        """Start the three consumers and wait until each is ready."""
        private = generate_private_key_pem()
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RISK_", "EXECUTION_", "STRATEGY_", "INGESTION_"))
        }
        environment.update(
            {
                "AMQP_URL": amqp_url,
                "DATABASE_URL": database_url,
                "RISK_APPROVAL_PRIVATE_KEY": private.decode("ascii"),
                "EXECUTION_APPROVAL_PUBLIC_KEYS": public_key_pem(private).decode("ascii"),
                "LOG_LEVEL": "WARNING",
                # the benchmark's symbols are not in the instrument map: keep risk's limits
                # from refusing them for exposure, so every bar does the full work
                "RISK_MAX_OPEN_POSITIONS": "1000",
            }
        )
        services = cls(environment, logs, {}, {})
        for name in CONSUMERS:
            port = _free_port()
            env = {**environment, f"{name.upper()}_OPS_PORT": str(port)}
            log = (logs / f"{name}.log").open("ab")
            services.processes[name] = subprocess.Popen(  # noqa: S603 - our own entry point
                [sys.executable, "-m", "tai_cli.main", "service", name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            services.ports[name] = port
        for name in CONSUMERS:
            services.wait_ready(name)
        return services

    def wait_ready(self, name: str, timeout: float = 180.0) -> None:
        """Wait for /ready (or fail with the service's log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited:\n{(self.logs / f'{name}.log').read_text()}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.ports[name]}/ready", timeout=2
                ) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready after {timeout}s")

    def bars_consumed(self) -> int:
        """Return the fewest bars any of the three services has handled so far."""
        counts = []
        for name in CONSUMERS:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.ports[name]}/metrics", timeout=5
            ) as response:
                text = response.read().decode("utf-8")
            total = 0.0
            for line in text.splitlines():
                match = _CONSUMED.match(line)
                if match is not None and match["queue"] in BAR_QUEUES:
                    total += float(match["v"])
            counts.append(int(total))
        return min(counts)

    def stop(self) -> None:
        """SIGTERM every process and wait."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def bars_for(symbols: int, count: int) -> list[BarClosed]:
    """Return ``count`` bars: the EURUSD sample, dealt round-robin over ``symbols`` symbols."""
    sample = load_bars(sample_path("EURUSD.csv"), symbol="EURUSD", timeframe=Timeframe.H1).bars
    names = ["EURUSD"] if symbols == 1 else [f"BENCH{index:03d}" for index in range(symbols)]
    bars = []
    for index in range(count):
        source = sample[index // symbols % len(sample)]
        bars.append(source.model_copy(update={"symbol": names[index % symbols]}))
    return bars


class Driver:
    """Publishes bars as ingestion would and times what comes back."""

    def __init__(self, url: str, database_url: str) -> None:
        self.bus = AmqpBus(url, "bench")
        self.store = Store(database_url)
        self.sent: dict[str, float] = {}
        self.approvals: list[float] = []
        self.fills: list[float] = []

    async def start(self) -> None:
        """Connect and listen to approvals and fills."""
        await self.bus.start()
        await self.bus.subscribe(
            Subscription(
                f"bench.approvals.{uuid.uuid4().hex[:6]}",
                [Binding(ORDER_APPROVED)],
                self._timer(self.approvals),
            )
        )
        await self.bus.subscribe(
            Subscription(
                f"bench.fills.{uuid.uuid4().hex[:6]}",
                [Binding(EXECUTION_FILL)],
                self._timer(self.fills),
            )
        )

    def _timer(self, into: list[float]) -> Any:
        async def record(envelope: Envelope[Message]) -> None:
            sent = self.sent.get(envelope.headers.correlation_id)
            if sent is not None:
                into.append(time.perf_counter() - sent)

        return record

    async def publish(self, bars: list[BarClosed], rate: float | None) -> float:
        """Store then publish the bars as ingestion's replay does; return the start time.

        At a fixed rate each bar is stored and published when due; flat out, the bars are
        stored in batches of ingestion's REPLAY_BATCH_BARS, each batch before it is published.
        """
        started = time.perf_counter()
        step = 1 if rate else REPLAY_BATCH_BARS
        for first in range(0, len(bars), step):
            if rate:
                await _pace(started, first, rate)
            batch = bars[first : first + step]
            await self.store.store_bars(batch)
            for bar in batch:
                headers = make_headers(bar, producer="ingestion", occurred_at=bar.closed_at)
                self.sent[headers.correlation_id] = time.perf_counter()
                await self.bus.publish(bar, headers=headers)
        return started

    async def close(self) -> None:
        """Disconnect."""
        await self.bus.close()
        await self.store.close()


async def _wait_consumed(services: Services, target: int, limit_seconds: float) -> float:
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        if await asyncio.to_thread(services.bars_consumed) >= target:
            return time.perf_counter()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the services did not handle {target} bars in {limit_seconds}s")


async def pipeline_run(
    amqp_url: str, database_url: str, logs: Path, *, symbols: int, bars: int, rate: float | None
) -> dict[str, float]:
    """Run one measurement on fresh service processes; return its figures."""
    store = Store(database_url)
    await store.migrate()
    await store.close()
    services = await asyncio.to_thread(Services.start, amqp_url, database_url, logs)
    driver = Driver(amqp_url, database_url)
    try:
        await driver.start()
        started = await driver.publish(bars_for(symbols, bars), rate)
        finished = await _wait_consumed(services, bars, limit_seconds=900)
        await asyncio.sleep(1.0)  # the last approvals/fills are in flight
    finally:
        await driver.close()
        await asyncio.to_thread(services.stop)
    result: dict[str, float] = {
        "symbols": symbols,
        "bars": bars,
        "throughput_bars_per_s": bars / (finished - started),
        "approvals": len(driver.approvals),
        "fills": len(driver.fills),
    }
    if driver.approvals:
        result["bar_to_approval_p50_ms"] = percentile(driver.approvals, 0.50) * 1000
        result["bar_to_approval_p99_ms"] = percentile(driver.approvals, 0.99) * 1000
    if driver.fills:
        result["bar_to_fill_p50_ms"] = percentile(driver.fills, 0.50) * 1000
        result["bar_to_fill_p99_ms"] = percentile(driver.fills, 0.99) * 1000
    return result


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Create a PostgreSQL database; drop it afterwards."""
    url = f"{POSTGRES_BASE.rsplit('/', 1)[0]}/tai_bench_{uuid.uuid4().hex[:10]}"
    create_database_if_missing(url)
    try:
        yield url
    finally:
        drop_database_if_exists(url)


async def run(bars: int, latency_bars: int, rate: float, raw_messages: int) -> dict[str, Any]:
    """Run every measurement and return the results document."""
    logs = Path(tempfile.mkdtemp(prefix="tai-bench-"))
    results: dict[str, Any] = {"offered_load_bars_per_s": rate, "machine_cpus": os.cpu_count()}
    with throwaway_vhost() as url:
        results["raw_aio_pika_throughput"] = await raw_one_hop(url, raw_messages, None)
        results["raw_aio_pika_latency"] = await raw_one_hop(url, int(rate * 10), rate)
    scaling = []
    for symbols in (1, 10, 100):
        with throwaway_vhost() as url, throwaway_database() as database:
            scaling.append(
                await pipeline_run(url, database, logs, symbols=symbols, bars=bars, rate=None)
            )
    results["pipeline_throughput"] = scaling[0]
    results["scaling"] = scaling
    with throwaway_vhost() as url, throwaway_database() as database:
        results["pipeline_latency"] = await pipeline_run(
            url, database, logs, symbols=1, bars=latency_bars, rate=rate
        )
    raw = results["raw_aio_pika_throughput"]["throughput_per_s"]
    results["targets"] = {
        "throughput_ratio_vs_raw": scaling[0]["throughput_bars_per_s"] / raw,
        "throughput_ratio_target": 0.5,
        "bar_to_approval_p99_ms": results["pipeline_latency"].get("bar_to_approval_p99_ms"),
        "bar_to_approval_p99_target_ms": 10.0,
    }
    shutil.rmtree(logs, ignore_errors=True)
    return results


def table(results: dict[str, Any]) -> str:
    """Return the results as a table, each figure beside its baseline."""
    raw = results["raw_aio_pika_throughput"]
    raw_latency = results["raw_aio_pika_latency"]
    latency = results["pipeline_latency"]
    lines = [
        f"{'measure':<44} {'pipeline':>12} {'raw aio-pika':>14}",
        "-" * 72,
        f"{'throughput, 1 symbol (bars or msgs/s)':<44} "
        f"{results['pipeline_throughput']['throughput_bars_per_s']:>12.0f} "
        f"{raw['throughput_per_s']:>14.0f}",
    ]
    for row in results["scaling"]:
        label = f"throughput, {row['symbols']} symbols (bars/s)"
        lines.append(f"{label:<44} {row['throughput_bars_per_s']:>12.0f} {'':>14}")
    rate = results["offered_load_bars_per_s"]
    for key, name in (("approval", "bar → approval"), ("fill", "bar → fill")):
        for quantile in ("p50", "p99"):
            value = latency.get(f"bar_to_{key}_{quantile}_ms")
            shown = "n/a" if value is None else f"{value:.1f}"
            baseline = raw_latency[f"latency_{quantile}_ms"]
            label = f"{name} {quantile} at {rate:.0f}/s (ms)"
            lines.append(f"{label:<44} {shown:>12} {baseline:>14.1f}")
    targets = results["targets"]
    lines.append(
        f"target: throughput >= 50 % of raw: {targets['throughput_ratio_vs_raw'] * 100:.0f} %; "
        f"bar → approval p99 < 10 ms: {targets['bar_to_approval_p99_ms']}"
    )
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=3000, help="bars per throughput run")
    parser.add_argument("--latency-bars", type=int, default=2000, help="bars at the fixed load")
    parser.add_argument("--rate", type=float, default=200.0, help="offered load, bars/s")
    parser.add_argument("--raw-messages", type=int, default=5000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    results = asyncio.run(
        run(arguments.bars, arguments.latency_bars, arguments.rate, arguments.raw_messages)
    )
    arguments.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))


if __name__ == "__main__":
    main()
