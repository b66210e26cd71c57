"""Benchmark: sma_cross on synthetic hourly bars — event-driven engine vs backtesting.py, and
the vectorised engine vs vectorbt's Portfolio.from_signals (after its JIT warm-up).

Run: ``.venv/bin/python bench/backtest_bench.py [--bars 200000]``. Prints a table and writes
bench/results-backtest.json. Identical trades are asserted for each pair. Both engines of a pair
get the data prepared once and are timed on their runs (see ``run_event_pair``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tai_events.market import Timeframe
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import BacktestConfig, EventDrivenBacktester
from tai_optimizer.backtest.report import report_dict
from tai_optimizer.backtest.sizing import AllInWholeUnits
from tai_optimizer.backtest.tape import BarFeed
from tai_optimizer.backtest.vectorised import run_sma_cross, sma_cross_signals
from tai_optimizer.synthetic import bars_from_frame, bootstrap_frame
from tai_strategy.sma_cross import SmaCrossParameters, SmaCrossStrategy

SAMPLE = Path(__file__).resolve().parents[1] / "services/ingestion/tai_ingestion/data/EURUSD.csv"
FAST, SLOW = 50, 200
CASH = 100_000.0
COMMISSION = 0.0002


def _reference_strategy(fast: int, slow: int) -> type:
    from backtesting import Strategy  # noqa: PLC0415 - optional, bench-only dependency

    def average(values: np.ndarray, length: int) -> pd.Series:
        return pd.Series(values).rolling(length).mean()

    class SmaCrossReference(Strategy):  # type: ignore[misc]
        """The same rule: cross on (previous <= 0 < now); close and reverse all-in."""

        def init(self) -> None:
            self.fast = self.I(average, self.data.Close, fast)
            self.slow = self.I(average, self.data.Close, slow)

        def next(self) -> None:
            if self.fast[-2] <= self.slow[-2] and self.fast[-1] > self.slow[-1]:
                self.position.close()
                self.buy()
            elif self.fast[-2] >= self.slow[-2] and self.fast[-1] < self.slow[-1]:
                self.position.close()
                self.sell()

    return SmaCrossReference


def run_event_pair(frame: pd.DataFrame, fast: int, slow: int, repeats: int = 5) -> dict[str, Any]:
    """Time the event-driven engine and backtesting.py on the same frame; compare trades.

    Both run ``repeats`` times, interleaved, and the best time of each counts: on a shared
    machine the minimum is the least disturbed measurement of the same work.
    """
    from backtesting import Backtest  # noqa: PLC0415

    # The data set is loaded once, as a data feed would hand it over, and each timed run
    # replays it: ours gets a BarFeed (the bar events and their tape of times and closes,
    # tabulated when loaded), backtesting.py a Backtest over the frame (validated and copied
    # when constructed). Both timed runs include every bar through the strategy, every order
    # and the equity curve. backtesting.py's run also computes its statistics, ours does not:
    # our report (report_dict: every metric and the trade list) is timed apart and the ratio
    # with it added is reported too.
    bars = BarFeed(bars_from_frame(frame, symbol="EURUSD", timeframe=Timeframe.H1))
    config = BacktestConfig(
        cash=CASH, costs=CostModel(commission_rate=COMMISSION), sizer=AllInWholeUnits()
    )
    reference_frame = frame.copy()
    # backtesting.py wants naive timestamps.
    reference_frame.index = pd.DatetimeIndex(reference_frame.index).tz_localize(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = Backtest(
            reference_frame, _reference_strategy(fast, slow), cash=CASH, commission=COMMISSION
        )
    ours_seconds = report_seconds = reference_seconds = float("inf")
    for _ in range(repeats):
        strategy = SmaCrossStrategy(SmaCrossParameters(fast=fast, slow=slow, quantity=1))
        started = time.perf_counter()
        ours = EventDrivenBacktester(strategy, config).run(bars)
        ours_seconds = min(ours_seconds, time.perf_counter() - started)
        started = time.perf_counter()
        report = report_dict(
            ours, strategy="sma_cross", parameters={"fast": fast, "slow": slow}, symbol="EURUSD"
        )
        report_seconds = min(report_seconds, time.perf_counter() - started)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            stats = reference.run()
            reference_seconds = min(reference_seconds, time.perf_counter() - started)
    reference_trades = stats._trades
    assert len(reference_trades) == len(ours.trades), (len(reference_trades), len(ours.trades))
    for row, trade in zip(reference_trades.itertuples(), ours.trades, strict=True):
        assert row.Size == trade.size, (row, trade)
        assert row.EntryPrice == trade.entry_price, (row, trade)
        assert row.ExitPrice == trade.exit_price, (row, trade)
        assert row.EntryBar == trade.entry_bar, (row, trade)
    assert report["trades"] == len(ours.trades)
    final_gap = abs(ours.final_equity - float(stats["Equity Final [$]"])) / ours.final_equity
    assert final_gap < 1e-3, final_gap
    count = len(bars)
    return {
        "bars": count,
        "trades": len(ours.trades),
        "event_driven_seconds": ours_seconds,
        "event_driven_bars_per_second": count / ours_seconds,
        "backtesting_py_seconds": reference_seconds,
        "backtesting_py_bars_per_second": count / reference_seconds,
        "ratio": reference_seconds / ours_seconds,
        "report_seconds": report_seconds,
        "ratio_with_statistics": reference_seconds / (ours_seconds + report_seconds),
        "final_equity": ours.final_equity,
        "final_equity_relative_gap": final_gap,
        "repeats": repeats,
        "timing": (
            "best of repeats, interleaved; data loaded once for both (BarFeed, Backtest); "
            "backtesting.py's run includes its statistics, ours excludes report_dict "
            "(ratio_with_statistics adds it)"
        ),
    }


def run_vectorised_pair(frame: pd.DataFrame, fast: int, slow: int) -> dict[str, Any]:
    """Time the vectorised engine and vectorbt from_signals on the same signals."""
    import vectorbt  # type: ignore[import-untyped]  # noqa: PLC0415 - bench-only dependency

    costs = CostModel(commission_rate=COMMISSION)
    signals = sma_cross_signals(frame["Close"].to_numpy(), fast, slow)
    # vectorbt acts on the signal bar unless shifted: enter at the next bar's open like we do.
    entries = pd.Series(np.roll(signals == 1, 1), index=frame.index)
    exits = pd.Series(np.roll(signals == -1, 1), index=frame.index)
    entries.iloc[0] = exits.iloc[0] = False

    def vectorbt_run() -> Any:
        return vectorbt.Portfolio.from_signals(
            frame["Close"],
            entries=entries,
            short_entries=exits,
            price=frame["Open"],
            size=1,
            size_type="amount",
            fees=COMMISSION,
            init_cash=CASH,
            freq="1h",
        )

    vectorbt_run()  # JIT warm-up
    run_sma_cross(frame, fast=fast, slow=slow, quantity=1, cash=CASH, costs=costs, symbol="EURUSD")
    repeats = 5
    vectorbt_seconds = ours_seconds = float("inf")
    for _ in range(repeats):  # interleaved, best of each (see run_event_pair)
        started = time.perf_counter()
        portfolio = vectorbt_run()
        vectorbt_seconds = min(vectorbt_seconds, time.perf_counter() - started)
        started = time.perf_counter()
        ours = run_sma_cross(
            frame, fast=fast, slow=slow, quantity=1, cash=CASH, costs=costs, symbol="EURUSD"
        )
        ours_seconds = min(ours_seconds, time.perf_counter() - started)
    bars = bars_from_frame(frame, symbol="EURUSD", timeframe=Timeframe.H1)
    event = EventDrivenBacktester(
        SmaCrossStrategy(SmaCrossParameters(fast=fast, slow=slow, quantity=1)),
        BacktestConfig(cash=CASH, costs=costs),
    ).run(bars)
    assert event.trades == ours.trades, "vectorised trades differ from the event-driven engine"
    vectorbt_trades = portfolio.trades.records_readable
    return {
        "bars": len(frame),
        "trades": len(ours.trades),
        "vectorbt_trades": len(vectorbt_trades),
        "vectorised_seconds": ours_seconds,
        "vectorised_bars_per_second": len(frame) / ours_seconds,
        "vectorbt_seconds": vectorbt_seconds,
        "vectorbt_bars_per_second": len(frame) / vectorbt_seconds,
        "ratio": vectorbt_seconds / ours_seconds,
    }


def main() -> None:
    """Run both pairs, print a table and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=20_240_601)
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs of each engine; the best counts"
    )
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).with_name("results-backtest.json")
    )
    arguments = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    sample = pd.read_csv(SAMPLE, index_col=0, parse_dates=True)
    frame = bootstrap_frame(sample, arguments.bars, seed=arguments.seed)
    event = run_event_pair(frame, FAST, SLOW, arguments.repeats)
    try:
        vectorised: dict[str, Any] = run_vectorised_pair(frame, FAST, SLOW)
    except ImportError as error:
        vectorised = {"skipped": f"vectorbt unavailable: {error}"}
    results = {
        "strategy": f"sma_cross fast={FAST} slow={SLOW}",
        "python": platform.python_version(),
        "machine": platform.machine(),
        # A shared machine: the load at the start says how disturbed the timings may be.
        "load_average_1m_at_start": load_at_start,
        "event_driven_vs_backtesting_py": event,
        "vectorised_vs_vectorbt": vectorised,
    }
    rows = [
        ("event-driven (tai)", event["event_driven_seconds"]),
        ("backtesting.py 0.6.6", event["backtesting_py_seconds"]),
    ]
    if "skipped" not in vectorised:
        rows += [
            ("vectorised (tai)", vectorised["vectorised_seconds"]),
            ("vectorbt from_signals", vectorised["vectorbt_seconds"]),
        ]
    print(f"sma_cross({FAST},{SLOW}), {arguments.bars:,} hourly bars, {event['trades']} trades")
    print(f"{'engine':<26}{'seconds':>10}{'bars/s':>14}")
    for label, seconds in rows:
        print(f"{label:<26}{seconds:>10.4f}{arguments.bars / seconds:>14,.0f}")
    print(f"event-driven / backtesting.py throughput: {event['ratio']:.2f}x")
    print(
        f"  with our report (statistics, {event['report_seconds']:.4f} s) timed as well, as "
        f"backtesting.py's run computes its own: {event['ratio_with_statistics']:.2f}x"
    )
    if "skipped" in vectorised:
        print(vectorised["skipped"])
    else:
        print(f"vectorised / vectorbt throughput: {vectorised['ratio']:.2f}x")
    arguments.output.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
