"""Run the gateway's async work (store, bus) from the console's WSGI worker threads."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

ResultT = TypeVar("ResultT")

DEFAULT_TIMEOUT_SECONDS = 15.0


class LoopBridge:
    """Submit coroutines to the event loop that owns the bus and the store, and wait."""

    def __init__(self, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeout = timeout_seconds

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind the bridge to the running loop (called by GatewayApp.start)."""
        self._loop = loop

    @property
    def attached(self) -> bool:
        """Return True once a loop is attached."""
        return self._loop is not None

    def run(self, coroutine: Coroutine[Any, Any, ResultT]) -> ResultT:
        """Run ``coroutine`` on the loop and return its result (call from another thread)."""
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the gateway is not started: no event loop to run on")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=self._timeout)
