"""Generate the published contracts in proto/: JSON Schema per message, an AsyncAPI 3 doc and
the human-readable topic catalogue (topics.md).

The gateway's OpenAPI document sits beside them; this library cannot import the gateway, so
``trading-ai contracts`` passes it in as an extra rendered file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tai_events.base import Command, Message
from tai_events.catalogue import render_catalogue
from tai_events.headers import MessageHeaders
from tai_events.registry import MESSAGE_CLASSES
from tai_events.topics import (
    CONTROL_EXCHANGE,
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    HISTORY_STREAM,
    ROUTING_KEY_PATTERNS,
)

CONTRACT_VERSION = "1.0.0"


def schema_file_name(message_class: type[Message]) -> str:
    """Return the proto/ path of one message type's JSON Schema."""
    return f"schemas/{message_class.message_type()}.v{message_class.schema_version}.json"


def json_schema(message_class: type[Message]) -> dict[str, Any]:
    """Return the JSON Schema of one message type and version."""
    schema = message_class.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:trading-ai-secure:{schema_file_name(message_class)}"
    schema["x-message-type"] = message_class.message_type()
    schema["x-schema-version"] = message_class.schema_version
    schema["x-routing-key"] = ROUTING_KEY_PATTERNS[message_class.message_type()]
    return schema


def asyncapi_document() -> dict[str, Any]:
    """Return the AsyncAPI 3 document describing exchanges, routing keys and payloads."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    headers_schema = MessageHeaders.model_json_schema()
    for message_class in MESSAGE_CLASSES:
        name = message_class.message_type()
        exchange = CONTROL_EXCHANGE if issubclass(message_class, Command) else EVENTS_EXCHANGE
        routing_key = ROUTING_KEY_PATTERNS[name]
        messages[name] = {
            "name": name,
            "title": name,
            "summary": (message_class.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/MessageHeaders"},
            "payload": {"$ref": f"./{schema_file_name(message_class)}"},
        }
        channel_id = name
        channels[channel_id] = {
            "address": routing_key,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": exchange,
                        "type": "topic",
                        "durable": True,
                        "autoDelete": False,
                        "vhost": "/",
                    },
                    "bindingVersion": "0.3.0",
                }
            },
        }
        operations[f"publish{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Trading AI Secure events",
            "version": CONTRACT_VERSION,
            "description": (
                "Events (past tense) on the durable topic exchange "
                f"'{EVENTS_EXCHANGE}', commands (imperative) on '{CONTROL_EXCHANGE}'. "
                "JSON payloads; headers carry message_id, type, schema_version, "
                "occurred_at, correlation_id, causation_id, producer and W3C traceparent. "
                "Delivery is at-least-once: consumers de-duplicate on message_id. "
                f"Rejected and undecodable messages go to '{DEAD_LETTER_EXCHANGE}'. "
                f"Every event but OrderApproved is also kept in the RabbitMQ stream "
                f"'{HISTORY_STREAM}' (replay with x-stream-offset). Field meanings: topics.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "rabbitmq:5672",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {"MessageHeaders": headers_schema},
        },
    }


def render_contracts() -> dict[str, str]:
    """Return every event contract file's relative path in proto/ and its exact text."""
    files: dict[str, str] = {}
    schemas = {message_class: json_schema(message_class) for message_class in MESSAGE_CLASSES}
    for message_class, schema in schemas.items():
        files[schema_file_name(message_class)] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    files["topics.md"] = render_catalogue(schemas)
    files["asyncapi.yaml"] = yaml.safe_dump(
        asyncapi_document(), sort_keys=True, allow_unicode=True, width=100
    )
    return files


def write_contracts(directory: Path, rendered: Mapping[str, str] | None = None) -> list[Path]:
    """Write proto/ afresh (removing stale schemas) and return the files written.

    ``rendered`` defaults to :func:`render_contracts`; callers add files the events library
    cannot render itself (the gateway's OpenAPI document).
    """
    rendered = render_contracts() if rendered is None else rendered
    schema_directory = directory / "schemas"
    schema_directory.mkdir(parents=True, exist_ok=True)
    for stale in schema_directory.glob("*.json"):
        if f"schemas/{stale.name}" not in rendered:
            stale.unlink()
    written = []
    for relative, text in rendered.items():
        path = directory / relative
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_contracts(directory: Path, rendered: Mapping[str, str] | None = None) -> list[str]:
    """Return the proto/ files that differ from the code (missing, changed or extra)."""
    rendered = render_contracts() if rendered is None else rendered
    problems = []
    for relative, text in rendered.items():
        path = directory / relative
        if not path.exists():
            problems.append(f"missing: {relative}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"changed: {relative}")
    schema_directory = directory / "schemas"
    if schema_directory.exists():
        for existing in schema_directory.glob("*.json"):
            if f"schemas/{existing.name}" not in rendered:
                problems.append(f"extra: schemas/{existing.name}")
    return problems
