"""Benchmark: latency of one pre-trade check with 10 open positions, beside its baselines.

Run: ``.venv/bin/python bench/risk_bench.py [--iterations 2000]``. Prints a table of p50/p99
in microseconds and writes bench/results-risk.json. Measured in the same run:

* ``sign only`` — the Ed25519 signature every approval carries (the floor of an approval);
* ``gates only`` — duplicate id, trading state, fat finger, order rate and stale data;
* ``full check`` — every rule, sizing and the signature, VaR/CVaR on cached returns (between
  bars, the common case), for the historical, parametric and Monte Carlo methods;
* ``full check after a new bar`` — the same right after every symbol's bar arrived (returns
  frame and correlation groups rebuilt).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tai_core.clock import FakeClock
from tai_core.signing import (
    UNSIGNED_KEY_ID,
    UNSIGNED_SIGNATURE,
    ApprovalSigner,
    generate_private_key_pem,
)
from tai_events.market import BarClosed, Timeframe
from tai_events.orders import OrderApproved, OrderRequested, Side
from tai_events.risk import TradingState
from tai_quant.risk import RiskMethod
from tai_risk.checks import RiskLimits
from tai_risk.engine import GATES, RiskEngine
from tai_risk.state import PortfolioState

START = datetime(2024, 1, 1, tzinfo=UTC)
POSITIONS = 10
HISTORY_BARS = 24 * 60  # 60 days of hourly bars per symbol
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results-risk.json"


def _bar(symbol: str, index: int, close: float) -> BarClosed:
    opened_at = START + index * Timeframe.H1.duration
    return BarClosed(
        symbol=symbol,
        timeframe=Timeframe.H1,
        opened_at=opened_at,
        closed_at=opened_at + Timeframe.H1.duration,
        open=close,
        high=close * 1.0005,
        low=close * 0.9995,
        close=close,
        volume=1_000.0,
        source="bench",
    )


def build_portfolio(generator: np.random.Generator) -> PortfolioState:
    """Return 10 open positions with 60 days of hourly history each."""
    portfolio = PortfolioState(equity=100_000.0)
    for number in range(POSITIONS):
        symbol = f"SYM{number}"
        closes = np.cumprod(1 + generator.normal(0, 0.001, HISTORY_BARS))
        for index, close in enumerate(closes):
            portfolio.market.on_bar(_bar(symbol, index, float(close)))
        portfolio.last_prices[symbol] = float(closes[-1])
        portfolio.projected_positions[symbol] = 5_000.0 * (1 if number % 2 else -1)
    return portfolio


def _request(portfolio: PortfolioState, index: int) -> OrderRequested:
    last = portfolio.market.latest_time()
    assert last is not None
    return OrderRequested(
        order_id=f"bench-{index}",
        strategy="bench",
        symbol="SYM1",
        side=Side.BUY,
        quantity=1_000.0,
        reference_price=portfolio.last_prices["SYM1"],
        stop_loss=portfolio.last_prices["SYM1"] * 0.99,
        win_probability=0.55,
        signal_time=last + timedelta(seconds=index % 50),
        requested_at=last,
    )


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    quantiles = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50_us": round(quantiles[49] / 1_000, 2),
        "p99_us": round(quantiles[98] / 1_000, 2),
        "mean_us": round(statistics.fmean(ordered) / 1_000, 2),
        "samples": len(ordered),
    }


def _measure(
    iterations: int,
    action: Callable[[int], object],
    prepare: Callable[[int], object] | None = None,
) -> dict[str, float]:
    """Time ``action`` (after an untimed ``prepare``) and return its percentiles."""
    for warm_up in range(min(20, iterations)):
        if prepare is not None:
            prepare(-1 - warm_up)
        action(warm_up)
    samples = []
    for index in range(iterations):
        if prepare is not None:
            prepare(index)
        started = time.perf_counter_ns()
        action(index)
        samples.append(time.perf_counter_ns() - started)
    return _percentiles(samples)


def _check_once(engine: RiskEngine, portfolio: PortfolioState, index: int) -> None:
    engine.check(_request(portfolio, index), portfolio, TradingState.ACTIVE)


def run(iterations: int) -> dict[str, Any]:
    """Measure every case and return the results."""
    generator = np.random.default_rng(2024)
    signer = ApprovalSigner.from_pem(generate_private_key_pem())
    portfolio = build_portfolio(generator)
    clock = FakeClock(START)
    results: dict[str, dict[str, float]] = {}

    unsigned = OrderApproved(
        approval_id="apr-bench",
        order_id="ord-bench",
        strategy="bench",
        symbol="SYM1",
        side=Side.BUY,
        quantity=1_000.0,
        requested_quantity=1_000.0,
        price_floor=0.9,
        price_ceiling=1.1,
        signal_time=START,
        issued_at=START,
        expires_at=START + timedelta(minutes=5),
        key_id=UNSIGNED_KEY_ID,
        signature=UNSIGNED_SIGNATURE,
    )
    results["sign only (baseline)"] = _measure(iterations, lambda _index: signer.sign(unsigned))

    limits = RiskLimits(require_market_data=True)

    def gates(index: int) -> None:
        request = _request(portfolio, index)
        for gate in GATES:
            gate(request, portfolio, limits)

    results["gates only (baseline)"] = _measure(iterations, gates)

    for method in RiskMethod:
        engine = RiskEngine(RiskLimits(require_market_data=True, var_method=method), signer, clock)
        decision = engine.check(_request(portfolio, 0), portfolio, TradingState.ACTIVE)
        if not decision.approved:
            raise RuntimeError(f"the bench order must be approved: {decision.rejection}")
        count = iterations if method is not RiskMethod.MONTE_CARLO else max(iterations // 10, 5)
        results[f"full check, {method.value}"] = _measure(
            count, partial(_check_once, engine, portfolio)
        )

    engine = RiskEngine(limits, signer, clock)
    closes = dict.fromkeys(portfolio.market.symbols, 1.0)
    steps = iter(range(1, 10**9))

    def new_bar_everywhere(_index: int) -> None:
        step = next(steps)
        for symbol, market in portfolio.market.symbols.items():
            closes[symbol] = market.last_close * float(1 + generator.normal(0, 0.001))
            portfolio.market.on_bar(_bar(symbol, HISTORY_BARS + step, closes[symbol]))

    results["full check after a new bar, historical"] = _measure(
        max(iterations // 4, 5),
        partial(_check_once, engine, portfolio),
        prepare=new_bar_everywhere,
    )
    return {
        "benchmark": "risk pre-trade check",
        "open_positions": POSITIONS,
        "history_bars_per_symbol": HISTORY_BARS,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    """Print the results as a table."""
    print(f"risk pre-trade check, {report['open_positions']} open positions")
    print(f"{'case':<42}{'p50 µs':>12}{'p99 µs':>12}{'samples':>10}")
    for case, numbers in report["results"].items():
        print(
            f"{case:<42}{numbers['p50_us']:>12.1f}{numbers['p99_us']:>12.1f}"
            f"{numbers['samples']:>10}"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2_000)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    arguments = parser.parse_args(argv)
    report = run(arguments.iterations)
    print_table(report)
    arguments.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
