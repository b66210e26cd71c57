"""Operational and trading alerts (routed as ``alert.<severity>``)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from tai_events.base import Event, Name, ShortText, UtcDatetime


class Severity(StrEnum):
    """Alert severity; also the last routing-key segment."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertRaised(Event):
    """Something a human should know about."""

    severity: Severity
    source: Name
    code: Name
    message: ShortText
    details: dict[str, str] = Field(default_factory=dict)
    raised_at: UtcDatetime
