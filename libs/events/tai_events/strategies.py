"""Strategy configuration events."""

from __future__ import annotations

from pydantic import Field

from tai_events.base import Event, Name, ScalarValue, UtcDatetime


class StrategyParametersUpdated(Event):
    """A strategy's parameters or enabled flag changed (by control or the optimizer)."""

    strategy: Name
    enabled: bool
    parameters: dict[str, ScalarValue] = Field(default_factory=dict)
    updated_at: UtcDatetime
    updated_by: str = Field(max_length=128)
