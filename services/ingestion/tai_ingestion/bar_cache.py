"""A cache of validated bars: a data file read and validated once is reused until it changes.

Each entry is one Parquet file holding the validated columns and, in its metadata, the
validation report. Its name is a hash of the data file's SHA-256 and of everything the result
depends on (validation settings, timeframe, start, calendar, and the source of the validation
code itself), so an entry never outlives what it was computed from. Entries are written to a
temporary file and renamed into place: concurrent readers see a whole entry or none, and two
processes storing the same entry store the same bytes. An unreadable entry is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
from pyarrow import parquet

from tai_events.market import Timeframe
from tai_ingestion import calendar as calendar_module
from tai_ingestion import replay as replay_module
from tai_ingestion import validation as validation_module
from tai_ingestion.calendar import EquityCalendar, ForexCalendar, from_microseconds, to_microseconds
from tai_ingestion.validation import (
    Policy,
    RowIssue,
    ValidatedBars,
    ValidationReport,
    Validator,
)

CACHE_FORMAT = 1
"""Bumped when the entry layout changes."""
DEFAULT_MAX_ENTRIES = 64
_COLUMNS = ("rows", "opened_at", "open", "high", "low", "close", "volume")
_METADATA_KEY = b"tai-validation"
_BLOCK = 1 << 20
_log = logging.getLogger(__name__)


def _rules_fingerprint() -> str:
    """Return a hash of the code that decides what is valid (a change invalidates entries)."""
    digest = hashlib.sha256()
    for module in (validation_module, calendar_module, replay_module):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """Return the SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class ValidatedBarCache:
    """Validated columns of data files, in ``directory``, keyed by content and settings."""

    def __init__(self, directory: Path, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.directory = directory
        self.max_entries = max_entries
        self._fingerprint: str | None = None

    def key(
        self,
        path: Path,
        validator: Validator,
        timeframe: Timeframe | None,
        start: datetime | None,
    ) -> str | None:
        """Return the entry name for validating ``path`` so; None when it cannot be cached.

        A calendar other than the built-in ones cannot be named, so its results are not kept.
        """
        calendar = validator.calendar
        if calendar is not None and not isinstance(calendar, ForexCalendar | EquityCalendar):
            return None
        try:
            content = file_digest(path)
        except OSError:
            return None  # the reader reports a missing or unreadable file
        if self._fingerprint is None:
            self._fingerprint = _rules_fingerprint()
        settings = {
            "format": CACHE_FORMAT,
            "rules": self._fingerprint,
            "file": content,
            "validation": validator.config.model_dump(mode="json"),
            "timeframe": timeframe.value if timeframe is not None else None,
            "start": to_microseconds(start) if start is not None else None,
            "calendar": repr(calendar),
        }
        encoded = json.dumps(settings, sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.parquet"

    def load(self, key: str) -> tuple[ValidatedBars, ValidationReport] | None:
        """Return the stored columns and report, or None (no entry, or an unreadable one)."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            table = parquet.read_table(path)
            meta = json.loads((table.schema.metadata or {})[_METADATA_KEY])
            columns = {name: table.column(name).to_numpy() for name in _COLUMNS}
            bars = ValidatedBars(
                timeframe=Timeframe(meta["timeframe"]),
                rows=columns["rows"].astype(np.int64),
                opened_at=columns["opened_at"].astype(np.int64),
                open=columns["open"].astype(np.float64),
                high=columns["high"].astype(np.float64),
                low=columns["low"].astype(np.float64),
                close=columns["close"].astype(np.float64),
                volume=columns["volume"].astype(np.float64),
            )
            report = ValidationReport(
                issues=[
                    RowIssue(row, stamp, rule, reason, Policy(action))
                    for row, stamp, rule, reason, action in meta["issues"]
                ],
                gaps=[from_microseconds(value) for value in meta["gaps"]],
                accepted=int(meta["accepted"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            _log.warning("ignoring unreadable cache entry %s: %s", path, error)
            return None
        if report.accepted != len(bars):
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        return bars, report

    def store(self, key: str, bars: ValidatedBars, report: ValidationReport) -> None:
        """Keep the columns and report under ``key`` (best effort: a failure is only logged)."""
        meta: dict[str, Any] = {
            "timeframe": bars.timeframe.value,
            "issues": [
                [issue.row, issue.timestamp, str(issue.rule), issue.reason, issue.action.value]
                for issue in report.issues
            ],
            "gaps": [to_microseconds(gap) for gap in report.gaps],
            "accepted": report.accepted,
        }
        table = pa.table(
            {name: getattr(bars, name) for name in _COLUMNS},
            metadata={_METADATA_KEY: json.dumps(meta).encode()},
        )
        temporary: Path | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=self.directory, prefix=".writing-", suffix=".tmp", delete=False
            ) as handle:
                temporary = Path(handle.name)
            parquet.write_table(table, temporary)
            os.replace(temporary, self._path(key))  # atomic: readers see all of it or nothing
            temporary = None
            self._prune()
        except OSError as error:
            _log.warning("cannot cache validated bars in %s: %s", self.directory, error)
        finally:
            if temporary is not None:
                temporary.unlink(missing_ok=True)

    def _prune(self) -> None:
        """Drop the least recently used entries beyond ``max_entries``."""
        entries = []
        for entry in self.directory.glob("*.parquet"):
            try:
                entries.append((entry.stat().st_mtime, entry))
            except OSError:
                continue  # removed by another process meanwhile
        for _, entry in sorted(entries, reverse=True)[self.max_entries :]:
            entry.unlink(missing_ok=True)


def default_cache() -> ValidatedBarCache | None:
    """Return the cache the command-line tools use: ``TAI_BAR_CACHE`` names its directory
    (``off`` disables it); by default ``.data/cache/bars`` under the working directory."""
    setting = os.environ.get("TAI_BAR_CACHE", ".data/cache/bars")
    if setting.strip().lower() in {"", "off", "0", "false", "no"}:
        return None
    return ValidatedBarCache(Path(setting))
