"""File replay as a source: a CSV or Parquet file of bars answers history and polling."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tai_events.market import Timeframe
from tai_ingestion.errors import UnsupportedRequestError
from tai_ingestion.instruments import Instrument, PriceBasis, convention
from tai_ingestion.models import RawBar
from tai_ingestion.replay import read_rows
from tai_ingestion.sources.base import closed_rows, in_range
from tai_ingestion.validation import parse_timestamp


class FileSource:
    """Serve one symbol and timeframe from a file (read once, lazily)."""

    name = "replay"

    def __init__(self, path: Path, *, symbol: str, timeframe: Timeframe) -> None:
        self._path = path
        self._symbol = symbol
        self._timeframe = timeframe
        self._rows: list[RawBar] | None = None

    def _all_rows(self) -> list[RawBar]:
        if self._rows is None:
            # Times are made comparable (UTC) here; everything else waits for the caller's
            # validator, which reports the file's bad rows.
            self._rows = [
                RawBar(
                    row.row,
                    parse_timestamp(row.timestamp) or str(row.timestamp),
                    row.open,
                    row.high,
                    row.low,
                    row.close,
                    row.volume,
                )
                for row in read_rows(self._path)
            ]
        return self._rows

    def price_basis(self, instrument: Instrument) -> PriceBasis:
        """Return the instrument's convention: a file is taken to follow it (runbook)."""
        return convention(instrument)

    def _check(self, symbol: str, timeframe: Timeframe) -> None:
        if (symbol, timeframe) != (self._symbol, self._timeframe):
            raise UnsupportedRequestError(
                self.name, f"{self._path.name} holds {self._symbol} {self._timeframe.value} only"
            )

    async def fetch_history(
        self, symbol: str, timeframe: Timeframe, start: datetime, end: datetime
    ) -> list[RawBar]:
        """Return the file's bars opened in [start, end)."""
        self._check(symbol, timeframe)
        return in_range(self._all_rows(), start, end)

    async def poll_recent(
        self, symbol: str, timeframe: Timeframe, since: datetime, now: datetime
    ) -> list[RawBar]:
        """Return the file's bars opened in [since, now) that have closed by ``now``."""
        self._check(symbol, timeframe)
        return closed_rows(in_range(self._all_rows(), since, now), timeframe, now)
