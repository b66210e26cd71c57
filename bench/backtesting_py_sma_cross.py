"""backtesting.py as a new user runs it: start Python, import, read the CSV, run, write trades.

The other side of the whole-process comparison in ``bench/cli_bench.py``: the same SMA cross
rule as ``bench/backtest_bench.py`` (cross on previous <= 0 < now; close and reverse all-in),
on the file given, trades written as JSON for the bench to compare with ours.

Run: ``.venv/bin/python bench/backtesting_py_sma_cross.py DATA.csv FAST SLOW CASH COMMISSION
OUT.json``.
"""

from __future__ import annotations

import json
import sys
import warnings

import pandas as pd
from backtesting import Backtest, Strategy


def _average(values: pd.Series, length: int) -> pd.Series:
    return pd.Series(values).rolling(length).mean()


def main() -> None:
    """Backtest the file named on the command line and write its trades."""
    data, fast, slow, cash, commission, output = sys.argv[1:7]

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(_average, self.data.Close, int(fast))
            self.slow = self.I(_average, self.data.Close, int(slow))

        def next(self) -> None:
            if self.fast[-2] <= self.slow[-2] and self.fast[-1] > self.slow[-1]:
                self.position.close()
                self.buy()
            elif self.fast[-2] >= self.slow[-2] and self.fast[-1] < self.slow[-1]:
                self.position.close()
                self.sell()

    frame = pd.read_csv(data, index_col=0, parse_dates=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(frame, SmaCross, cash=float(cash), commission=float(commission)).run()
    trades = stats._trades
    result = {
        "final_equity": float(stats["Equity Final [$]"]),
        "trades": [
            {
                "size": float(row.Size),
                "entry_bar": int(row.EntryBar),
                "entry_price": float(row.EntryPrice),
                "exit_price": float(row.ExitPrice),
            }
            for row in trades.itertuples()
        ],
    }
    with open(output, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
