"""Encode messages for the wire and decode them back, with clear reasons on failure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from tai_events.base import Message
from tai_events.headers import MessageHeaders, new_message_id
from tai_events.registry import lookup

MAX_PAYLOAD_BYTES = 256 * 1024
"""Larger payloads are refused: no message of ours comes near this."""

MessageT = TypeVar("MessageT", bound=Message)


class MessageDecodeError(ValueError):
    """A message could not be decoded; ``reason`` says why, for the dead-letter header."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Envelope(Generic[MessageT]):
    """A decoded message with its headers and routing key."""

    headers: MessageHeaders
    message: MessageT
    routing_key: str
    redelivered: bool = False


def make_headers(
    message: Message,
    *,
    producer: str,
    occurred_at: datetime,
    cause: MessageHeaders | None = None,
    message_id: str | None = None,
    traceparent: str | None = None,
) -> MessageHeaders:
    """Return headers for a new message, continuing the cause's correlation when given."""
    identifier = message_id or new_message_id()
    return MessageHeaders(
        message_id=identifier,
        type=message.message_type(),
        schema_version=message.schema_version,
        occurred_at=occurred_at,
        correlation_id=cause.correlation_id if cause else identifier,
        causation_id=cause.message_id if cause else None,
        producer=producer,
        traceparent=traceparent if traceparent else (cause.traceparent if cause else None),
    )


def _format_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False)[:5]:
        location = ".".join(str(part) for part in item["loc"]) or "<payload>"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


def decode_headers(raw: Mapping[str, Any]) -> MessageHeaders:
    """Validate wire headers; raise MessageDecodeError naming what is wrong."""
    known = {key: _header_text(value) for key, value in raw.items() if key in _HEADER_FIELDS}
    try:
        return MessageHeaders.model_validate(known)
    except ValidationError as error:
        raise MessageDecodeError(f"invalid headers: {_format_validation_error(error)}") from None


_HEADER_FIELDS = frozenset(MessageHeaders.model_fields)


def _header_text(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value


def decode_body(headers: MessageHeaders, body: bytes) -> Message:
    """Validate a payload against the schema its headers name."""
    if len(body) > MAX_PAYLOAD_BYTES:
        raise MessageDecodeError(f"payload of {len(body)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    message_class = lookup(headers.type, headers.schema_version)
    if message_class is None:
        raise MessageDecodeError(
            f"unknown message type/version {headers.type} v{headers.schema_version}"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MessageDecodeError(f"payload is not valid UTF-8: {error}") from None
    try:
        return message_class.model_validate_json(text)
    except ValidationError as error:
        raise MessageDecodeError(
            f"invalid {headers.type} v{headers.schema_version}: {_format_validation_error(error)}"
        ) from None


def decode(raw_headers: Mapping[str, Any], body: bytes, routing_key: str) -> Envelope[Message]:
    """Decode wire headers and payload into an Envelope or raise MessageDecodeError."""
    headers = decode_headers(raw_headers)
    return Envelope(headers=headers, message=decode_body(headers, body), routing_key=routing_key)


def encode(message: Message) -> bytes:
    """Return the wire payload of a message."""
    return message.to_json_bytes()


__all__ = [
    "Envelope",
    "MessageDecodeError",
    "decode",
    "decode_body",
    "decode_headers",
    "encode",
    "make_headers",
    "new_message_id",
]
