"""Control commands (imperative), published on the control exchange."""

from __future__ import annotations

from pydantic import Field

from tai_events.base import Command, Name, ScalarValue, ShortText, Symbol, UtcDatetime


class _ControlCommand(Command):
    requested_by: str = Field(min_length=1, max_length=128)
    requested_at: UtcDatetime
    reason: ShortText = ""


class HaltTrading(_ControlCommand):
    """Stop admitting any order (kill switch)."""


class ResumeTrading(_ControlCommand):
    """Return to ACTIVE trading; only an authenticated admin may ask."""


class FlattenPositions(_ControlCommand):
    """Close positions: one symbol, or all when ``symbol`` is None."""

    symbol: Symbol | None = None


class ConfigureStrategy(_ControlCommand):
    """Enable, disable or re-parameterise a strategy at run time."""

    strategy: Name
    enabled: bool | None = None
    parameters: dict[str, ScalarValue] = Field(default_factory=dict)
