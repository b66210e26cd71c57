"""proto/ is the published contract: it must equal what the code generates."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from tai_events.contracts import json_schema, render_contracts, stale_contracts
from tai_events.registry import MESSAGE_CLASSES
from tests.factories import REPOSITORY_ROOT, make_bar

PROTO = REPOSITORY_ROOT / "proto"


def test_proto_directory_matches_the_code() -> None:
    # Act
    problems = stale_contracts(PROTO)
    # Assert
    assert problems == [], "proto/ is stale; run `make contracts`: " + ", ".join(problems)


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
