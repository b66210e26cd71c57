"""Hypothesis strategies for malformed and hostile messages, built from real valid ones.

Each hostile message starts from a message the pipeline really produced (a bar, an order
request, an approval, a fill, an order state, a halt command) and breaks it in one way a
consumer must refuse: a required field missing, a field of the wrong type, a non-finite
number, a payload over the size limit, an unknown schema version, invalid UTF-8, garbage
bytes, a type header naming another message, a missing header, or a valid message of another
type sent where it does not belong.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tai_events.base import Message
from tai_events.codec import MAX_PAYLOAD_BYTES, encode
from tai_events.headers import MessageHeaders
from tai_events.topics import exchange_for, routing_key_for

WRONG_TYPES: list[object] = [[1, 2], {"nested": 1}, [], {}]
NON_FINITE = ["NaN", "Infinity", "-Infinity"]
WRONG_OFFSETS = [-1, 1, 98]
"""Versions off the message's own (each type has its own current version); plus 0 and -1."""
OTHER_TYPES = ["BarClosed", "OrderRequested", "OrderApproved", "FillExecuted", "HaltTrading"]


@dataclass(frozen=True)
class Sample:
    """A valid message as it travelled: where to, with which headers and body."""

    message: Message
    exchange: str
    routing_key: str
    headers: dict[str, object]

    @classmethod
    def of(cls, message: Message, headers: MessageHeaders) -> Sample:
        """Return the sample of a message sent with these headers."""
        return cls(
            message, exchange_for(message), routing_key_for(message), dict(headers.to_wire())
        )

    @property
    def payload(self) -> dict[str, Any]:
        """Return the JSON payload as a dict."""
        loaded: dict[str, Any] = json.loads(encode(self.message))
        return loaded


@dataclass(frozen=True)
class Hostile:
    """One malformed message and how it was broken."""

    kind: str
    exchange: str
    routing_key: str
    headers: dict[str, object]
    body: bytes


def _fresh_headers(sample: Sample, **changes: object) -> dict[str, object]:
    headers = {**sample.headers, "message_id": f"hostile-{uuid.uuid4().hex}"}
    headers.update(changes)
    return headers


def _hostile(sample: Sample, kind: str, body: bytes, **header_changes: object) -> Hostile:
    return Hostile(
        kind, sample.exchange, sample.routing_key, _fresh_headers(sample, **header_changes), body
    )


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode("utf-8")


def _required_fields(sample: Sample) -> list[str]:
    return [name for name, info in type(sample.message).model_fields.items() if info.is_required()]


def _scalar_fields(sample: Sample) -> list[str]:
    return [
        name
        for name, value in sample.payload.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool)
    ]


def _float_fields(sample: Sample) -> list[str]:
    return [name for name, value in sample.payload.items() if isinstance(value, float)]


def _missing_field(sample: Sample) -> st.SearchStrategy[Hostile]:
    def build(name: str) -> Hostile:
        payload = sample.payload
        del payload[name]
        return _hostile(sample, f"missing field {name}", _json(payload))

    return st.sampled_from(_required_fields(sample)).map(build)


def _wrong_type(sample: Sample) -> st.SearchStrategy[Hostile]:
    def build(name: str, value: object) -> Hostile:
        payload = {**sample.payload, name: value}
        return _hostile(sample, f"wrong type for {name}", _json(payload))

    return st.builds(build, st.sampled_from(_scalar_fields(sample)), st.sampled_from(WRONG_TYPES))


def _non_finite(sample: Sample) -> st.SearchStrategy[Hostile]:
    fields = _float_fields(sample)
    if not fields:
        return st.nothing()

    def build(name: str, token: str) -> Hostile:
        marker = "__non_finite__"
        text = json.dumps({**sample.payload, name: marker}).replace(f'"{marker}"', token)
        return _hostile(sample, f"{token} in {name}", text.encode("utf-8"))

    return st.builds(build, st.sampled_from(fields), st.sampled_from(NON_FINITE))


def _huge(sample: Sample) -> st.SearchStrategy[Hostile]:
    def build(extra: int) -> Hostile:
        # Valid JSON padded with whitespace: only the size limit can refuse it.
        body = encode(sample.message) + b" " * (MAX_PAYLOAD_BYTES + extra)
        return _hostile(sample, "payload over the size limit", body)

    return st.integers(min_value=1, max_value=2 * MAX_PAYLOAD_BYTES).map(build)


def _wrong_version(sample: Sample) -> st.SearchStrategy[Hostile]:
    current = sample.message.schema_version
    wrong = sorted({0, -1, *(current + offset for offset in WRONG_OFFSETS)} - {current})
    return st.sampled_from(wrong).map(
        lambda version: _hostile(
            sample, f"schema version {version}", encode(sample.message), schema_version=version
        )
    )


def _invalid_utf8(sample: Sample) -> st.SearchStrategy[Hostile]:
    def build(garbage: bytes) -> Hostile:
        body = encode(sample.message)
        quote = body.index(b'":"') + 3  # inside the first string value
        return _hostile(sample, "invalid UTF-8", body[:quote] + garbage + body[quote:])

    return st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\x80", b"\xed\xa0\x80"]).map(build)


def _garbage(sample: Sample) -> st.SearchStrategy[Hostile]:
    return st.binary(max_size=256).map(lambda body: _hostile(sample, "garbage bytes", body))


def _other_type(sample: Sample) -> st.SearchStrategy[Hostile]:
    others = [name for name in OTHER_TYPES if name != type(sample.message).__name__]
    return st.sampled_from(others).map(
        lambda name: _hostile(sample, f"type header {name}", encode(sample.message), type=name)
    )


def _missing_header(sample: Sample) -> st.SearchStrategy[Hostile]:
    def build(name: str) -> Hostile:
        hostile = _hostile(sample, f"missing header {name}", encode(sample.message))
        headers = dict(hostile.headers)
        del headers[name]
        return Hostile(hostile.kind, hostile.exchange, hostile.routing_key, headers, hostile.body)

    return st.sampled_from(["message_id", "type", "schema_version", "occurred_at"]).map(build)


def _misrouted(sample: Sample, samples: list[Sample]) -> st.SearchStrategy[Hostile]:
    """A valid message of another type, sent where this sample goes."""
    others = [other for other in samples if other.routing_key != sample.routing_key]

    def build(other: Sample) -> Hostile:
        return Hostile(
            f"a valid {type(other.message).__name__} on {sample.routing_key}",
            sample.exchange,
            sample.routing_key,
            _fresh_headers(other),
            encode(other.message),
        )

    return st.sampled_from(others).map(build)


def hostile_messages(samples: list[Sample]) -> st.SearchStrategy[Hostile]:
    """Draw a sample, then break it in one of the ways a consumer must refuse."""

    def breakages(sample: Sample) -> st.SearchStrategy[Hostile]:
        return st.one_of(
            _misrouted(sample, samples),
            _missing_field(sample),
            _wrong_type(sample),
            _non_finite(sample),
            _huge(sample),
            _wrong_version(sample),
            _invalid_utf8(sample),
            _garbage(sample),
            _other_type(sample),
            _missing_header(sample),
        )

    return st.sampled_from(samples).flatmap(breakages)
