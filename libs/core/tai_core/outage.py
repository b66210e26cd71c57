"""One policy for waiting out an outage of a dependency (the database, the broker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tenacity

DEFAULT_OUTAGE_PATIENCE_SECONDS = 300.0
"""How long work waits for an unavailable dependency before it fails."""


def waiting_out_outages(
    is_outage: Callable[[BaseException], bool],
    *,
    patience_seconds: float = DEFAULT_OUTAGE_PATIENCE_SECONDS,
    before_sleep: Callable[[tenacity.RetryCallState], Any] | None = None,
) -> tenacity.AsyncRetrying:
    """Return a retrying loop that runs its block again while ``is_outage`` says so.

    Back-off grows from 0.1 s to 5 s between attempts; after ``patience_seconds`` the last
    error is raised. Other errors are raised at once.
    """
    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(is_outage),
        wait=tenacity.wait_exponential(multiplier=0.1, max=5.0),
        stop=tenacity.stop_after_delay(patience_seconds),
        before_sleep=before_sleep,
        reraise=True,
    )
