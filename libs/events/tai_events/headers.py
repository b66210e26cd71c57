"""The standard headers every message carries."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tai_events.base import UtcDatetime

TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
MessageId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


def new_message_id() -> str:
    """Return a fresh random message id."""
    return uuid.uuid4().hex


class MessageHeaders(BaseModel):
    """Envelope metadata: identity, type and version, causality and tracing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: MessageId
    type: str = Field(pattern=r"^[A-Z][A-Za-z0-9]{1,63}$")
    schema_version: int = Field(ge=1, le=1000)
    occurred_at: UtcDatetime
    correlation_id: MessageId
    causation_id: MessageId | None = None
    producer: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    traceparent: str | None = Field(default=None, pattern=TRACEPARENT_PATTERN)
    tracestate: str | None = Field(default=None, max_length=512)

    def to_wire(self) -> dict[str, str | int]:
        """Return the headers as AMQP header values (strings and ints only)."""
        wire: dict[str, str | int] = {}
        for key, value in self.model_dump(mode="json").items():
            if value is not None:
                wire[key] = value
        return wire
