"""proto/ is the published contract: it must equal what the code generates."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tai_cli.contracts import published_contracts
from tai_events.catalogue import FIELD_MEANINGS, MissingMeaningError, meaning
from tai_events.contracts import json_schema, stale_contracts
from tai_events.registry import MESSAGE_CLASSES
from tests.factories import REPOSITORY_ROOT

PROTO = REPOSITORY_ROOT / "proto"


def test_proto_directory_matches_the_code() -> None:
    # Act: schemas, AsyncAPI, the topic catalogue and the gateway's OpenAPI document
    problems = stale_contracts(PROTO, published_contracts())
    # Assert
    assert problems == [], "proto/ is stale; run `make contracts`: " + ", ".join(problems)


def test_make_contracts_runs_and_writes_what_the_drift_test_checks(tmp_path: Path) -> None:
    # Act: the Makefile's own recipe (its install prerequisite taken as done), into tmp_path
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".venv/.installed",
            "contracts",
            f"PROTO_DIRECTORY={tmp_path}",
        ],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Assert
    assert result.returncode == 0, result.stdout + result.stderr
    assert stale_contracts(tmp_path, published_contracts()) == []
    assert (tmp_path / "topics.md").read_text(encoding="utf-8").startswith("# Topic catalogue")


def test_the_catalogue_has_a_table_with_a_meaning_for_every_field() -> None:
    # Arrange
    catalogue = (PROTO / "topics.md").read_text(encoding="utf-8")
    # Act / Assert
    for message_class in MESSAGE_CLASSES:
        schema = json_schema(message_class)
        assert f"## {message_class.message_type()}" in catalogue
        for field, field_schema in schema["properties"].items():
            assert meaning(message_class.message_type(), field, field_schema)
            assert f"| `{field}` |" in catalogue


def test_a_field_without_any_meaning_is_refused() -> None:
    assert "no_such_field" not in FIELD_MEANINGS
    with pytest.raises(MissingMeaningError, match=r"BarClosed\.no_such_field"):
        meaning("BarClosed", "no_such_field", {"type": "string"})
