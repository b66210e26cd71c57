"""proto/ is the published contract: it must equal what the code generates."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tai_cli.contracts import OPENAPI_FILE, published_contracts
from tai_events.catalogue import FIELD_MEANINGS, MissingMeaningError, meaning
from tai_events.contracts import (
    json_schema,
    render_contracts,
    stale_contracts,
)
from tai_events.registry import MESSAGE_CLASSES
from tests.factories import REPOSITORY_ROOT, make_bar

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


def _is_typed(schema: dict[str, object]) -> bool:
    """A named model, or a list of named models or of one scalar type."""
    if "$ref" in schema:
        return True
    items = schema.get("items")
    if schema.get("type") == "array" and isinstance(items, dict):
        return "$ref" in items or items.get("type") in {"string", "integer", "number"}
    return False


def test_the_openapi_document_types_every_success_response() -> None:
    # Arrange
    document = json.loads((PROTO / OPENAPI_FILE).read_text(encoding="utf-8"))
    # Act
    untyped = [
        f"{method.upper()} {path} {code}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for code, response in operation["responses"].items()
        if code.startswith("2")
        and code != "204"  # no content: nothing to type
        and "text/plain" not in next(iter(response.get("content", {"": None})), "")
        and not _is_typed(response.get("content", {}).get("application/json", {}).get("schema", {}))
    ]
    # Assert
    assert untyped == []
    assert re.fullmatch(r"\d+\.\d+\.\d+", document["info"]["version"])


def test_every_message_type_has_a_schema_and_an_asyncapi_channel() -> None:
    # Arrange
    document = yaml.safe_load((PROTO / "asyncapi.yaml").read_text(encoding="utf-8"))
    # Act
    channels = set(document["channels"])
    # Assert
    assert document["asyncapi"].startswith("3.")
    assert channels == {cls.message_type() for cls in MESSAGE_CLASSES}
    for cls in MESSAGE_CLASSES:
        assert (PROTO / "schemas" / f"{cls.message_type()}.v{cls.schema_version}.json").exists()


def test_published_schema_accepts_what_the_model_emits() -> None:
    # Arrange
    bar = make_bar(0, 1.1)
    schema = json.loads((PROTO / "schemas" / "BarClosed.v1.json").read_text(encoding="utf-8"))
    # Act / Assert
    jsonschema.validate(json.loads(bar.to_json_bytes()), schema)


@pytest.mark.parametrize("message_class", MESSAGE_CLASSES, ids=lambda cls: cls.message_type())
def test_schema_forbids_unknown_fields(message_class: type) -> None:
    # Act
    schema = json_schema(message_class)
    # Assert
    assert schema.get("additionalProperties") is False


def test_detects_a_stale_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Arrange
    for relative, text in render_contracts().items():
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    (tmp_path / "schemas" / "BarClosed.v1.json").write_text("{}", encoding="utf-8")
    # Act
    problems = stale_contracts(tmp_path)
    # Assert
    assert problems == ["changed: schemas/BarClosed.v1.json"]
