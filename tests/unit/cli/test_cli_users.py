"""``trading-ai users``: add, list, set-role, passwd, remove and sessions revoke."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tai_cli.commands import app

PASSWORD = "correct-horse-battery-staple-7"


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite'}"


def _run(database: str, *arguments: str, stdin: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(app, ["users", *arguments, "--database-url", database], input=stdin)
    return result.exit_code, " ".join(result.output.split())


def test_a_user_is_added_changed_listed_and_removed(database: str) -> None:
    assert _run(database, "add", "carol", "--role", "trader", stdin=PASSWORD + "\n")[0] == 0
    assert _run(database, "set-role", "carol", "admin")[0] == 0
    assert _run(database, "passwd", "carol", stdin="another-long-passphrase-8\n")[0] == 0
    code, listing = _run(database, "list")
    assert code == 0
    assert "carol" in listing
    assert "admin" in listing
    assert _run(database, "sessions", "revoke", "carol")[0] == 0
    assert _run(database, "remove", "carol")[0] == 0
    assert "carol" not in _run(database, "list")[1]


@pytest.mark.parametrize(
    "arguments",
    [("passwd", "nobody"), ("set-role", "nobody", "admin"), ("remove", "nobody")],
)
def test_changing_an_unknown_user_fails_with_exit_code_2(
    database: str, arguments: tuple[str, ...]
) -> None:
    code, output = _run(database, *arguments, stdin=PASSWORD + "\n")
    assert code == 2
    assert "no user 'nobody'" in output


def test_a_bad_role_is_refused(database: str) -> None:
    _run(database, "add", "carol", stdin=PASSWORD + "\n")
    code, output = _run(database, "set-role", "carol", "root")
    assert code == 2
    assert "role must be" in output


def test_a_weak_new_password_is_refused(database: str) -> None:
    _run(database, "add", "carol", stdin=PASSWORD + "\n")
    code, output = _run(database, "passwd", "carol", stdin="Password1234\n")
    assert code == 2
    assert "too common" in output
