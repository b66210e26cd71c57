"""Raw rows as sources deliver them, before validation turns them into bars; source names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class SourceName(StrEnum):
    """The sources the failover can use."""

    YFINANCE = "yfinance"
    ALPHA_VANTAGE = "alpha_vantage"
    IG = "ig"
    REPLAY = "replay"


@dataclass(frozen=True, slots=True)
class RawBar:
    """One OHLCV row as received: values are untrusted until the validator has seen them.

    ``timestamp`` is the bar's open time, possibly naive or in a foreign timezone, or the
    raw text when it came from a file; ``row`` locates it in its origin (file line, index).
    """

    row: int
    timestamp: datetime | str
    open: object
    high: object
    low: object
    close: object
    volume: object = 0.0
