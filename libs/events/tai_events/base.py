"""Base classes and field types shared by every message on the bus."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _validate_symbol(value: str) -> str:
    if not SYMBOL_PATTERN.fullmatch(value):
        raise ValueError(
            "symbol must be 1-32 upper-case letters, digits, '_' or '-' (no dots: "
            "symbols are routing-key segments)"
        )
    return value


def _validate_finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("value must be a finite number")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware timestamp, normalised to UTC; naive timestamps are refused."""

Symbol = Annotated[str, AfterValidator(_validate_symbol)]
"""An instrument in the system's own naming, e.g. ``EURUSD``."""

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
"""An opaque id (order, fill, approval, model ...)."""

Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Quantity = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeAmount = Annotated[float, Field(ge=0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_validate_finite)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
ShortText = Annotated[str, Field(max_length=2000)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""A lower-case snake_case name (strategies, rules, producers)."""

ScalarValue = FiniteFloat | int | bool | Annotated[str, Field(max_length=256)]


class Message(BaseModel):
    """A message on the bus: immutable, strictly shaped, JSON on the wire."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        str_strip_whitespace=False,
        use_enum_values=False,
        # field docstrings become the published schemas' descriptions (proto/, topics.md)
        use_attribute_docstrings=True,
    )

    schema_version: ClassVar[int] = 1
    """Bumped on a breaking change; the pair (type, version) names one JSON Schema."""

    @classmethod
    def message_type(cls) -> str:
        """Return the wire name of this message type (the class name)."""
        return cls.__name__

    def to_json_bytes(self) -> bytes:
        """Encode the payload as compact UTF-8 JSON."""
        return self.model_dump_json().encode("utf-8")


class Event(Message):
    """Something that happened (past tense): published on the events exchange."""


class Command(Message):
    """Something asked of the system (imperative): published on the control exchange."""


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime (prefer an injected Clock)."""
    return datetime.now(UTC)


def describe(value: Any) -> str:
    """Return a short printable form of a value for error reasons."""
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
