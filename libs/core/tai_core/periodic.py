"""A background timer: run an async action every few seconds until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

_LOG = logging.getLogger(__name__)


class PeriodicTask:
    """Run ``action`` every ``interval_seconds`` in the background.

    A failing tick is logged and the next tick tries again: an outage of what the action
    talks to (the broker, the database) must not stop the timer.
    """

    def __init__(
        self, name: str, interval_seconds: float, action: Callable[[], Awaitable[Any]]
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self.name = name
        self._interval = interval_seconds
        self._action = action
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start ticking in the background."""
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._action()
            except Exception:  # the next tick retries; log why this one failed
                _LOG.exception("%s failed; retrying on the next tick", self.name)

    async def stop(self) -> None:
        """Stop ticking (a tick in progress is cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
