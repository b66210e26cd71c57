"""Owner-only files and directories: created so, and loose existing ones tightened."""

from __future__ import annotations

import stat
from pathlib import Path

from tai_core.files import ensure_private_directory, ensure_private_file, write_private_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_loose_existing_directory_is_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    ensure_private_directory(directory)
    assert _mode(directory) == 0o700


def test_a_missing_file_is_created_owner_only_and_a_loose_one_tightened(tmp_path: Path) -> None:
    created = ensure_private_file(tmp_path / "new.sqlite")
    loose = tmp_path / "old.sqlite"
    loose.write_bytes(b"x")
    loose.chmod(0o644)
    ensure_private_file(loose)
    assert (_mode(created), _mode(loose), loose.read_bytes()) == (0o600, 0o600, b"x")


def test_a_written_secret_is_owner_only(tmp_path: Path) -> None:
    path = write_private_file(tmp_path / "secret", b"s3cret")
    assert (_mode(path), path.read_bytes()) == (0o600, b"s3cret")
