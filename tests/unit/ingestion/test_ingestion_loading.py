"""Loading files: columns without per-row Python, a cache of validated bars, symbols from names."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pandas as pd
import pytest

from tai_events.market import Timeframe
from tai_ingestion.bar_cache import ValidatedBarCache, default_cache
from tai_ingestion.calendar import ForexCalendar
from tai_ingestion.replay import (
    ReplayData,
    ReplayFileError,
    load_bars,
    read_columns,
    symbol_from_file_name,
)
from tai_ingestion.samples import sample_path
from tai_ingestion.validation import Policy, Rule, ValidationConfig, Validator
from tai_optimizer.daily import frame_from_bars


@pytest.fixture
def eurusd(tmp_path: Path) -> Path:
    path = tmp_path / "EURUSD.csv"
    path.write_bytes(sample_path("EURUSD.csv").read_bytes())
    return path


def _load(path: Path, cache: ValidatedBarCache | None, **config: object) -> ReplayData:
    validator = Validator(ValidationConfig.model_validate(config), calendar=ForexCalendar())
    return load_bars(path, symbol="EURUSD", timeframe=None, validator=validator, cache=cache)


def test_clean_csv_prices_arrive_as_numbers_and_times_as_text(eurusd: Path) -> None:
    # Act
    raw = read_columns(eurusd)
    # Assert: the C parser read the numbers; nothing was touched row by row
    assert [raw.column(name).dtype.kind for name in ("open", "high", "low", "close")] == ["f"] * 4
    assert raw.volume.dtype.kind == "i"
    assert raw.times[0] == "2017-04-19 09:00:00"
    assert raw.rows[0] == 2


def test_the_timeframe_is_inferred_from_the_spacing_of_the_rows(eurusd: Path) -> None:
    assert load_bars(eurusd, symbol="EURUSD", timeframe=None).columns.timeframe is Timeframe.H1
    goog = load_bars(sample_path("GOOG.csv"), symbol="GOOG", timeframe=None)
    assert goog.columns is not None
    assert goog.columns.timeframe is Timeframe.D1


def test_a_loaded_frame_equals_the_frame_of_its_bars(eurusd: Path) -> None:
    # Arrange
    data = load_bars(eurusd, symbol="EURUSD", timeframe=Timeframe.H1)
    # Act
    frame = data.frame()
    # Assert
    pd.testing.assert_frame_equal(frame, frame_from_bars(data.bars))


def test_a_second_load_of_the_same_file_comes_from_the_cache(eurusd: Path, tmp_path: Path) -> None:
    # Arrange
    cache = ValidatedBarCache(tmp_path / "cache")
    first = _load(eurusd, cache)
    # Act
    second = _load(eurusd, cache)
    # Assert
    assert len(list((tmp_path / "cache").glob("*.parquet"))) == 1
    assert second.bars == first.bars
    assert second.report.issues == first.report.issues
    assert second.report.gaps == first.report.gaps
    assert first.report.gaps  # the bundled EURUSD has gaps to carry over


def test_the_cache_is_used_rather_than_the_file(
    eurusd: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: an entry for the file's content, then the reader made to fail
    cache = ValidatedBarCache(tmp_path / "cache")
    expected = _load(eurusd, cache)

    def unreadable(path: Path) -> None:
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr("tai_ingestion.replay.read_columns", unreadable)
    # Act
    loaded = _load(eurusd, cache)
    # Assert
    assert loaded.bars == expected.bars
    assert loaded.report.issues == expected.report.issues


def test_a_changed_file_or_setting_is_validated_again(eurusd: Path, tmp_path: Path) -> None:
    # Arrange
    cache = ValidatedBarCache(tmp_path / "cache")
    _load(eurusd, cache)
    lines = eurusd.read_text().splitlines()
    lines[5] = lines[5].replace(",", ",abc,", 1).rsplit(",", 1)[0]  # a broken row
    eurusd.write_text("\n".join(lines) + "\n")
    # Act
    changed = _load(eurusd, cache)
    stricter = _load(eurusd, cache, policies={Rule.MISALIGNED: Policy.REJECT})
    # Assert
    assert changed.rejected_by_rule() == {"schema": 1}
    assert stricter.rejected_by_rule() == {"schema": 1}
    assert len(list((tmp_path / "cache").glob("*.parquet"))) == 3


def test_an_unreadable_entry_is_a_miss_and_is_replaced(eurusd: Path, tmp_path: Path) -> None:
    # Arrange
    cache = ValidatedBarCache(tmp_path / "cache")
    expected = _load(eurusd, cache)
    (entry,) = (tmp_path / "cache").glob("*.parquet")
    entry.write_bytes(b"not parquet")
    # Act
    again = _load(eurusd, cache)
    # Assert
    assert again.bars == expected.bars
    assert cache.load(entry.stem) is not None


def test_concurrent_loads_share_the_cache_safely(eurusd: Path, tmp_path: Path) -> None:
    # Arrange
    cache_directory = tmp_path / "cache"
    results: list[ReplayData] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            results.append(_load(eurusd, ValidatedBarCache(cache_directory)))
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=load) for _ in range(6)]
    # Act
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Assert: every load whole and equal; one entry, no temporary file left behind
    assert errors == []
    assert all(result.bars == results[0].bars for result in results)
    assert [path.name for path in cache_directory.iterdir() if path.suffix != ".parquet"] == []
    assert len(list(cache_directory.glob("*.parquet"))) == 1


def test_old_entries_are_pruned(eurusd: Path, tmp_path: Path) -> None:
    # Arrange
    cache = ValidatedBarCache(tmp_path / "cache", max_entries=2)
    # Act
    for window in (5, 6, 7):
        _load(eurusd, cache, outlier_window=window)
    # Assert
    assert len(list((tmp_path / "cache").glob("*.parquet"))) == 2


def test_the_default_cache_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TAI_BAR_CACHE", "off")
    assert default_cache() is None
    monkeypatch.setenv("TAI_BAR_CACHE", str(tmp_path))
    cache = default_cache()
    assert cache is not None
    assert cache.directory == tmp_path
    monkeypatch.delenv("TAI_BAR_CACHE")
    cache = default_cache()
    assert cache is not None
    assert cache.directory == Path(".data/cache/bars")


def test_an_unwritable_cache_directory_does_not_stop_a_load(eurusd: Path, tmp_path: Path) -> None:
    # Arrange: the cache directory is a file
    blocked = tmp_path / "blocked"
    blocked.write_text("")
    # Act
    data = _load(eurusd, ValidatedBarCache(blocked / "cache"))
    # Assert
    assert len(data.bars) > 4000


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_is_a_replay_error(eurusd: Path, tmp_path: Path) -> None:
    eurusd.chmod(0)
    with pytest.raises(ReplayFileError):
        _load(eurusd, ValidatedBarCache(tmp_path / "cache"))


@pytest.mark.parametrize(
    ("name", "symbol"),
    [("EURUSD.csv", "EURUSD"), ("goog.parquet", "GOOG"), ("es_mini-1.csv", "ES_MINI-1")],
)
def test_a_file_named_after_its_instrument_gives_the_symbol(name: str, symbol: str) -> None:
    assert symbol_from_file_name(Path(name)) == symbol


def test_a_file_name_with_dots_asks_for_the_symbol() -> None:
    with pytest.raises(ValueError, match=r"pass --symbol, e\.g\. --symbol EURUSD$") as raised:
        symbol_from_file_name(Path("data/eurusd.2024.csv"))
    assert "'eurusd.2024.csv'" in str(raised.value)
