"""Benchmark: the wall clock a user sees - whole processes, started cold, best of N.

Sections (``--only help,backtest,growth,optimize,validation``; all by default):

* help        ``trading-ai --help`` and each command's ``--help``, against ``python -c pass``.
* backtest    ``trading-ai backtest`` against a backtesting.py script (bench/
              backtesting_py_sma_cross.py: start Python, import, read_csv, run) on the same
              200,000 hourly bars (the bundled EURUSD repeated 40 times), SMA cross 10/20,
              commission 0.0002; the trades must be identical. Ours runs without the cache of
              validated bars (cold) and with it (a run before filled it).
* growth      ``trading-ai backtest`` at 10k, 100k and 1M bars: wall time, per-bar cost and
              the marginal per-bar cost from 100k to 1M against 10k to 100k.
* optimize    ``trading-ai optimize`` for a fixed study (bundled EURUSD, 20 TPE trials,
              seed 42, in memory), beside the command's own ``--help``.
* validation  In process: read and validate 1,000,000 rows (columns), and build their bar
              events, against the row-wise rules it replaced (tests/unit/ingestion/
              row_wise_reference.py) on 100,000 rows, per row.

Every process is new (no warm interpreter); the runs of a pair are interleaved and the best
time of each counts (the least disturbed on a shared machine). The environment is reported:
bytecode compiled at install (``make install``) or not, and the load average.

Run: ``.venv/bin/python bench/cli_bench.py [--only backtest] [--repeats 5]``, or
``make bench-cli``, or ``scripts/bench --only cli``. Prints tables, writes
bench/results-cli.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TRADING_AI = BIN / "trading-ai"
SAMPLE = ROOT / "services/ingestion/tai_ingestion/data/EURUSD.csv"
REFERENCE_SCRIPT = ROOT / "bench/backtesting_py_sma_cross.py"
RESULTS = Path(__file__).with_name("results-cli.json")
FAST, SLOW, CASH, COMMISSION = 10, 20, 100_000.0, 0.0002
SECTIONS = ("help", "backtest", "growth", "optimize", "validation")
HELP_COMMANDS = ([], ["backtest"], ["optimize"], ["train"], ["data"], ["run"], ["service"])


def repeated_sample(copies: int, path: Path) -> Path:
    """Write the bundled EURUSD ``copies`` times over, on one continuous hourly grid."""
    frame = pd.read_csv(SAMPLE, index_col=0, parse_dates=True)
    big = pd.concat([frame] * copies)
    big.index = pd.date_range(frame.index[0], periods=len(big), freq="h")
    big.to_csv(path)
    return path


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    """Run ``command`` to completion in a new process; return its wall time in seconds."""
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S603 - our own interpreter and tool, fixed arguments
        command, capture_output=True, text=True, env=env, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def best_of(commands: dict[str, list[str]], repeats: int, env: dict[str, str]) -> dict[str, float]:
    """Run each command ``repeats`` times, interleaved; return the best time of each."""
    best = dict.fromkeys(commands, float("inf"))
    for _ in range(repeats):
        for name, command in commands.items():
            best[name] = min(best[name], timed(command, env))
    return best


def backtest_command(data: Path, json_path: Path) -> list[str]:
    """Return the ``trading-ai backtest`` command line of the benchmark."""
    return [
        str(TRADING_AI),
        "backtest",
        "--strategy",
        "sma_cross",
        "--param",
        f"fast={FAST}",
        "--param",
        f"slow={SLOW}",
        "--data",
        str(data),
        "--symbol",
        "EURUSD",
        "--cash",
        str(CASH),
        "--commission",
        str(COMMISSION),
        "--json",
        str(json_path),
    ]


def environment(cache: Path | None) -> dict[str, str]:
    """Return the process environment, the cache of validated bars in ``cache`` or off."""
    env = dict(os.environ)
    env["TAI_BAR_CACHE"] = str(cache) if cache is not None else "off"
    return env


def bytecode_compiled() -> bool:
    """Return True if pandas is byte-compiled (``make install``), else every import compiles."""
    spec = importlib.util.find_spec("pandas.core.frame")
    assert spec is not None
    assert spec.origin is not None
    return Path(importlib.util.cache_from_source(spec.origin)).is_file()


def help_section(repeats: int) -> dict[str, Any]:
    """Time ``--help`` of the tool and of several commands against an empty interpreter."""
    env = environment(None)
    commands = {"python -c pass": [sys.executable, "-c", "pass"]}
    for arguments in HELP_COMMANDS:
        label = " ".join(["trading-ai", *arguments, "--help"])
        commands[label] = [str(TRADING_AI), *arguments, "--help"]
    best = best_of(commands, repeats, env)
    return {"seconds": best, "goal_seconds": 0.5, "slowest_help": max(list(best.values())[1:])}


def _same_trades(ours: dict[str, Any], reference: dict[str, Any]) -> None:
    theirs = reference["trades"]
    mine = ours["trade_list"]
    assert len(mine) == len(theirs), (len(mine), len(theirs))
    for trade, row in zip(mine, theirs, strict=True):
        assert trade["size"] == row["size"], (trade, row)
        assert trade["entry_bar"] == row["entry_bar"], (trade, row)
        assert trade["entry_price"] == row["entry_price"], (trade, row)
        assert trade["exit_price"] == row["exit_price"], (trade, row)
    gap = abs(ours["final_equity"] - reference["final_equity"]) / reference["final_equity"]
    assert gap < 1e-9, gap


def backtest_section(directory: Path, repeats: int) -> dict[str, Any]:
    """Time whole-process backtests of ours (cache off, cache warm) and backtesting.py's."""
    data = repeated_sample(40, directory / "EURUSD-200k.csv")
    ours_json, cached_json, reference_json = (
        directory / "ours.json",
        directory / "cached.json",
        directory / "reference.json",
    )
    cache = directory / "cache"
    timed(backtest_command(data, cached_json), environment(cache))  # fills the cache
    reference = [
        sys.executable,
        str(REFERENCE_SCRIPT),
        str(data),
        str(FAST),
        str(SLOW),
        str(CASH),
        str(COMMISSION),
        str(reference_json),
    ]
    best = dict.fromkeys(("ours", "ours_cached", "backtesting_py"), float("inf"))
    for _ in range(repeats):
        best["ours"] = min(
            best["ours"], timed(backtest_command(data, ours_json), environment(None))
        )
        best["ours_cached"] = min(
            best["ours_cached"], timed(backtest_command(data, cached_json), environment(cache))
        )
        best["backtesting_py"] = min(best["backtesting_py"], timed(reference, environment(None)))
    ours = json.loads(ours_json.read_text())
    cached = json.loads(cached_json.read_text())
    theirs = json.loads(reference_json.read_text())
    _same_trades(ours, theirs)
    _same_trades(cached, theirs)
    phases = phases_of_a_backtest(data, directory, repeats)
    return {
        "phases_seconds": phases,
        "bars": 200_000,
        "trades": ours["trades"],
        "final_equity": ours["final_equity"],
        "seconds": best,
        "ratio": best["backtesting_py"] / best["ours"],
        "ratio_cached": best["backtesting_py"] / best["ours_cached"],
        "goal_ratio": 3.0,
        "repeats": repeats,
    }


_PHASES = """
import json, sys, time
started = time.perf_counter()
from pathlib import Path
from tai_ingestion.replay import load_bars
from tai_optimizer.backtest.costs import CostModel
from tai_optimizer.backtest.engine import BacktestConfig, EventDrivenBacktester
from tai_optimizer.backtest.report import report_dict, write_json
from tai_optimizer.backtest.sizing import AllInWholeUnits
from tai_optimizer.cli import _feed
from tai_optimizer.strategies import build_strategy
phases = {"imports": time.perf_counter() - started}
data, fast, slow, cash, commission, output = sys.argv[1:7]
started = time.perf_counter()
replay = load_bars(Path(data), symbol="EURUSD", timeframe=None)
phases["read and validate"] = time.perf_counter() - started
started = time.perf_counter()
bars = _feed(replay, "EURUSD")
phases["bar events and tape"] = time.perf_counter() - started
strategy, values = build_strategy("sma_cross", {"fast": int(fast), "slow": int(slow)})
config = BacktestConfig(
    cash=float(cash), costs=CostModel(commission_rate=float(commission)), sizer=AllInWholeUnits()
)
started = time.perf_counter()
result = EventDrivenBacktester(strategy, config).run(bars)
phases["engine (strategy, risk, broker)"] = time.perf_counter() - started
started = time.perf_counter()
report = report_dict(result, strategy="sma_cross", parameters=values, symbol="EURUSD")
phases["report (metrics, trade list)"] = time.perf_counter() - started
started = time.perf_counter()
write_json(report, Path(output))
phases["write the JSON report"] = time.perf_counter() - started
print(json.dumps(phases))
"""


def phases_of_a_backtest(data: Path, directory: Path, repeats: int) -> dict[str, float]:
    """Return where a backtest process spends its time (best of ``repeats`` per phase)."""
    best: dict[str, float] = {}
    command = [
        sys.executable,
        "-c",
        _PHASES,
        str(data),
        str(FAST),
        str(SLOW),
        str(CASH),
        str(COMMISSION),
        str(directory / "phases.json"),
    ]
    for _ in range(repeats):
        result = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
            command, capture_output=True, text=True, env=environment(None), check=True
        )
        for phase, seconds in json.loads(result.stdout.strip().splitlines()[-1]).items():
            best[phase] = min(best.get(phase, float("inf")), seconds)
    return best


def growth_section(directory: Path, repeats: int) -> dict[str, Any]:
    """Time whole-process backtests at 10k, 100k and 1M bars (cache off)."""
    rows = []
    for bars in (10_000, 100_000, 1_000_000):
        copies = bars // 5000
        data = repeated_sample(copies, directory / f"EURUSD-{bars}.csv")
        best = float("inf")
        for _ in range(repeats):
            best = min(
                best, timed(backtest_command(data, directory / "growth.json"), environment(None))
            )
        rows.append({"bars": bars, "seconds": best, "microseconds_per_bar": best / bars * 1e6})
        data.unlink()
    small, middle, large = rows
    early = (middle["seconds"] - small["seconds"]) / (middle["bars"] - small["bars"])
    late = (large["seconds"] - middle["seconds"]) / (large["bars"] - middle["bars"])
    return {
        "rows": rows,
        "marginal_microseconds_per_bar_10k_to_100k": early * 1e6,
        "marginal_microseconds_per_bar_100k_to_1m": late * 1e6,
        "marginal_growth": late / early,
        "goal_growth_within": 0.2,
        "repeats": repeats,
    }


def optimize_section(directory: Path, repeats: int) -> dict[str, Any]:
    """Time a fixed ``trading-ai optimize`` study as a whole process, beside its ``--help``."""
    command = [
        str(TRADING_AI),
        "optimize",
        "--data",
        str(SAMPLE),
        "--trials",
        "20",
        "--seed",
        "42",
        "--json",
        str(directory / "optimize.json"),
    ]
    best = best_of(
        {"optimize": command, "optimize --help": [str(TRADING_AI), "optimize", "--help"]},
        repeats,
        environment(None),
    )
    report = json.loads((directory / "optimize.json").read_text())
    return {
        "study": "sma_cross on bundled EURUSD (5,000 hourly bars), 20 TPE trials, seed 42",
        "seconds": best,
        "trials": len(report["trials"]),
        "best_parameters": report["best_parameters"],
        "repeats": repeats,
    }


def validation_section(directory: Path, repeats: int) -> dict[str, Any]:
    """Time reading and validating 1M rows (columns) against the row-wise rules per row."""
    sys.path.insert(0, str(ROOT))
    from tai_events.market import Timeframe  # noqa: PLC0415
    from tai_ingestion.calendar import ForexCalendar  # noqa: PLC0415
    from tai_ingestion.replay import read_columns  # noqa: PLC0415
    from tai_ingestion.validation import Validator  # noqa: PLC0415
    from tests.unit.ingestion.row_wise_reference import (  # noqa: PLC0415
        RowWiseValidator,
        row_wise_read_rows,
    )

    data = repeated_sample(200, directory / "EURUSD-1m.csv")
    validator = Validator(calendar=ForexCalendar())
    read = validate = events = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        raw = read_columns(data)
        read = min(read, time.perf_counter() - started)
        started = time.perf_counter()
        columns, report = validator.validate_columns(raw, timeframe=Timeframe.H1)
        validate = min(validate, time.perf_counter() - started)
        started = time.perf_counter()
        columns.to_bars("EURUSD", "replay")
        events = min(events, time.perf_counter() - started)
    sample = repeated_sample(20, directory / "EURUSD-100k.csv")
    started = time.perf_counter()
    rows = row_wise_read_rows(sample)
    row_wise_read = time.perf_counter() - started
    started = time.perf_counter()
    RowWiseValidator(calendar=ForexCalendar()).validate(
        rows, symbol="EURUSD", timeframe=Timeframe.H1, source="replay"
    )
    row_wise = time.perf_counter() - started
    count = len(raw)
    return {
        "rows": count,
        "read_seconds": read,
        "validate_seconds": validate,
        "bar_events_seconds": events,
        "accepted": report.accepted,
        "goal_validate_seconds": 1.0,
        "row_wise_rows": len(rows),
        "row_wise_read_seconds": row_wise_read,
        "row_wise_validate_and_events_seconds": row_wise,
        "row_wise_microseconds_per_row": row_wise / len(rows) * 1e6,
        "vectorised_microseconds_per_row": validate / count * 1e6,
        "ratio_per_row": (row_wise / len(rows)) / (validate / count),
        "repeats": repeats,
    }


def _print(results: dict[str, Any]) -> None:
    print(
        f"python {results['python']}, bytecode compiled: {results['bytecode_compiled']}, "
        f"load average {results['load_average_1m_at_start']:.2f}"
    )
    if "help" in results:
        print(f"\n{'start-up (best of N, new process)':<44}{'seconds':>10}")
        for label, seconds in results["help"]["seconds"].items():
            print(f"{label:<44}{seconds:>10.3f}")
    if "backtest" in results:
        section = results["backtest"]
        seconds = section["seconds"]
        print(
            f"\nwhole process, {section['bars']:,} hourly bars, sma_cross {FAST}/{SLOW}, "
            f"{section['trades']:,} identical trades, final equity {section['final_equity']:,.2f}"
        )
        print(f"{'':<44}{'seconds':>10}{'vs backtesting.py':>20}")
        for label, key in (
            ("backtesting.py 0.6.6 script", "backtesting_py"),
            ("trading-ai backtest (no cache)", "ours"),
            ("trading-ai backtest (cached bars)", "ours_cached"),
        ):
            ratio = seconds["backtesting_py"] / seconds[key]
            print(f"{label:<44}{seconds[key]:>10.3f}{ratio:>19.2f}x")
        print("where a backtest process spends its time (in process, best of N):")
        for phase, phase_seconds in section["phases_seconds"].items():
            print(f"  {phase:<42}{phase_seconds:>10.3f}")
    if "growth" in results:
        section = results["growth"]
        print(f"\n{'trading-ai backtest, whole process':<44}{'seconds':>10}{'us/bar':>10}")
        for row in section["rows"]:
            label = f"{row['bars']:>12,} bars"
            print(f"{label:<44}{row['seconds']:>10.3f}{row['microseconds_per_bar']:>10.2f}")
        print(
            f"marginal cost per bar: {section['marginal_microseconds_per_bar_10k_to_100k']:.2f} us "
            f"(10k-100k), {section['marginal_microseconds_per_bar_100k_to_1m']:.2f} us "
            f"(100k-1M): x{section['marginal_growth']:.2f}"
        )
    if "optimize" in results:
        section = results["optimize"]
        print(f"\n{section['study']}")
        for label, seconds in section["seconds"].items():
            print(f"{'trading-ai ' + label:<44}{seconds:>10.3f}")
    if "validation" in results:
        section = results["validation"]
        print(f"\nvalidation, in process, {section['rows']:,} rows (FX calendar)")
        print(f"{'read CSV into columns':<44}{section['read_seconds']:>10.3f}")
        print(f"{'validate (vectorised)':<44}{section['validate_seconds']:>10.3f}")
        print(f"{'build the bar events':<44}{section['bar_events_seconds']:>10.3f}")
        print(
            f"row-wise rules it replaced: {section['row_wise_microseconds_per_row']:.2f} us/row "
            f"on {section['row_wise_rows']:,} rows, vectorised "
            f"{section['vectorised_microseconds_per_row']:.3f} us/row "
            f"({section['ratio_per_row']:.0f}x)"
        )


def main() -> None:
    """Run the chosen sections, print their tables and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--repeats", type=int, default=5, help="runs per process; best counts")
    parser.add_argument("--growth-repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    chosen = [name.strip() for name in arguments.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": os.getloadavg()[0],
        "bytecode_compiled": bytecode_compiled(),
    }
    if not results["bytecode_compiled"]:
        print(
            "warning: pandas is not byte-compiled; run `make install` "
            "(start-up times include compiling)"
        )
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        if "help" in chosen:
            results["help"] = help_section(arguments.repeats)
        if "backtest" in chosen:
            results["backtest"] = backtest_section(directory, arguments.repeats)
        if "growth" in chosen:
            results["growth"] = growth_section(directory, arguments.growth_repeats)
        if "optimize" in chosen:
            results["optimize"] = optimize_section(directory, min(arguments.repeats, 3))
        if "validation" in chosen:
            results["validation"] = validation_section(directory, min(arguments.repeats, 3))
    _print(results)
    previous = json.loads(arguments.output.read_text()) if arguments.output.is_file() else {}
    previous.update(results)  # a partial run keeps the other sections' last results
    arguments.output.write_text(json.dumps(previous, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
