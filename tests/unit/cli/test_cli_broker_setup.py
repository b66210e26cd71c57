"""``trading-ai broker-setup --subscriber``: the layout file keeps it, the definitions grant it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from tai_cli.commands import app


def _setup(tmp_path: Path, *arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        [
            "broker-setup",
            "--no-apply",
            "--layout-file",
            str(tmp_path / "layout.json"),
            "--definitions-file",
            str(tmp_path / "definitions.json"),
            "--secrets-file",
            str(tmp_path / "rabbitmq.env"),
            *arguments,
        ],
    )
    return result.exit_code, result.output


def _definitions(tmp_path: Path) -> dict[str, list[dict[str, object]]]:
    loaded: dict[str, list[dict[str, object]]] = json.loads(
        (tmp_path / "definitions.json").read_text()
    )
    return loaded


def test_a_subscriber_is_kept_in_the_layout_and_granted_in_the_definitions(
    tmp_path: Path,
) -> None:
    # Act
    code, output = _setup(
        tmp_path, "--subscriber", "acme", "--topics", "market.bar.#", "--topics", "execution.fill"
    )
    # a later run without the option keeps it
    again, _ = _setup(tmp_path, "--history-max-age", "30D")
    # Assert
    assert code == 0, output
    assert again == 0
    layout = json.loads((tmp_path / "layout.json").read_text())
    assert layout["subscribers"] == [{"name": "acme", "topics": ["execution.fill", "market.bar.#"]}]
    assert layout["history"]["max_age"] == "30D"
    definitions = _definitions(tmp_path)
    assert "tai-ext-acme" in {user["name"] for user in definitions["users"]}
    (events,) = [
        entry
        for entry in definitions["topic_permissions"]
        if entry["user"] == "tai-ext-acme" and entry["exchange"] == "tai.events"
    ]
    assert re.search(str(events["read"]), "market.bar.1h.EURUSD")
    assert not re.search(str(events["read"]), "order.approved")


def test_removing_a_subscriber_takes_it_out_of_the_definitions(tmp_path: Path) -> None:
    # Arrange
    _setup(tmp_path, "--subscriber", "acme")
    # Act
    code, output = _setup(tmp_path, "--remove-subscriber", "acme")
    # Assert
    assert code == 0, output
    assert "tai-ext-acme" not in {user["name"] for user in _definitions(tmp_path)["users"]}
    assert json.loads((tmp_path / "layout.json").read_text())["subscribers"] == []


def test_a_topic_that_would_read_approvals_is_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    # Act
    code, output = _setup(tmp_path, "--subscriber", "acme", "--topics", "order.*")
    # Assert
    assert code == 2
    assert "order.approved" in output
    assert not (tmp_path / "definitions.json").exists()
