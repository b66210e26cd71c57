"""Research events: what an optimizer run (daily job, retraining, study) concluded."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from tai_events.base import Event, Identifier, Name, ScalarValue, ShortText, Symbol, UtcDatetime


class ResearchRunStatus(StrEnum):
    """How a research run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ResearchRunFinished(Event):
    """An optimizer run finished: its outcome (promoted, rejected, shadowing ...) or its error.

    Published after the run and its report are stored (the report itself stays in the
    ledger, under ``run_id``); operators are notified of promotions and failures.
    """

    run_id: Identifier
    """The research run (its trigger and model or strategy) this reports on."""
    kind: Name
    """``daily``, ``retrain``, ``optimize``, ``walk_forward`` or ``montecarlo``."""
    subject: str = Field(max_length=128)
    """The strategy optimised or the model retrained."""
    symbol: Symbol
    status: ResearchRunStatus
    """How the run ended."""
    outcome: Name | None = None
    """What the run decided: ``promoted``, ``rejected``, ``shadow_started``, ``no_drift`` ..."""
    reason: ShortText = ""
    summary: dict[str, ScalarValue] = Field(default_factory=dict)
    """Key figures of the run (metrics, the chosen parameter set, gates)."""
    error: ShortText | None = None
    """What went wrong, when the run failed."""
    finished_at: UtcDatetime
    """When the run finished (UTC)."""
