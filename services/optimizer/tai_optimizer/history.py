"""Where the optimizer's jobs get their bars: the ledger's OHLCV, else the bundled sample.

The daily job and the retraining run on the bars ingestion stored. On a fresh installation
the ledger holds none yet: the jobs then say so in their report and use the bundled sample
of the symbol (``tai_ingestion``'s data), so the nightly job still does its work instead of
failing every night.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from tai_events.market import BarClosed, Timeframe
from tai_ingestion.replay import load_bars
from tai_ingestion.samples import sample_path
from tai_store.database import Store
from tai_store.records import StoredBar


@dataclass(frozen=True)
class History:
    """Bars for a job, oldest first, and where they came from."""

    bars: list[BarClosed]
    source: str
    """``ledger`` or ``bundled sample <file> (the ledger held N bars)``."""

    @property
    def frame(self) -> pd.DataFrame:
        """Return the bars as an OHLCV frame (capitalised columns, opening times)."""
        return frame_from_bars(self.bars)


def frame_from_bars(bars: list[StoredBar] | list[BarClosed]) -> pd.DataFrame:
    """Return an OHLCV frame (index = bar open times) from stored bars or bar events."""
    return pd.DataFrame(
        {
            "Open": [bar.open for bar in bars],
            "High": [bar.high for bar in bars],
            "Low": [bar.low for bar in bars],
            "Close": [bar.close for bar in bars],
            "Volume": [bar.volume for bar in bars],
        },
        index=pd.DatetimeIndex([bar.opened_at for bar in bars]),
    )


async def stored_bars(
    store: Store,
    symbol: str,
    timeframe: Timeframe,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[BarClosed]:
    """Return the ledger's bars of a symbol opened in [start, end), as bar events."""
    async with store.transaction() as unit:
        stored = await unit.ohlcv.range(symbol, timeframe, start=start, end=end)
    return [bar.to_event() for bar in stored]


def bundled_bars(symbol: str, timeframe: Timeframe) -> list[BarClosed] | None:
    """Return the bundled sample of a symbol (None when there is none)."""
    try:
        path = sample_path(f"{symbol}.csv")
    except FileNotFoundError:
        return None
    return list(load_bars(path, symbol=symbol, timeframe=timeframe).bars)


async def latest_history(
    store: Store,
    symbol: str,
    timeframe: Timeframe,
    *,
    end: datetime,
    bars: int,
    minimum: int,
    fallback: bool = True,
) -> History:
    """Return the last ``bars`` bars before ``end`` from the ledger, else the bundled sample.

    The sample is used when the ledger holds fewer than ``minimum`` bars and ``fallback`` is
    on; otherwise too few bars raise ValueError naming the count.
    """
    stored = await stored_bars(store, symbol, timeframe, end=end)
    if len(stored) >= minimum:
        return History(stored[-bars:], "ledger")
    sample = bundled_bars(symbol, timeframe) if fallback else None
    if sample is None or len(sample) < minimum:
        raise ValueError(
            f"only {len(stored)} stored {symbol} {timeframe.value} bars before "
            f"{end.isoformat()} (need {minimum}) and no bundled sample to fall back on"
        )
    return History(
        sample[-bars:],
        f"bundled sample {symbol}.csv (the ledger held {len(stored)} bars)",
    )
