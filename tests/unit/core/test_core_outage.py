"""Waiting out an outage: the block runs again while the error is an outage, and only then."""

from __future__ import annotations

import pytest

from tai_core.outage import waiting_out_outages


def _is_outage(error: BaseException) -> bool:
    return isinstance(error, ConnectionError)


async def _run(failures: list[BaseException], patience_seconds: float = 5.0) -> int:
    attempts = 0
    async for attempt in waiting_out_outages(_is_outage, patience_seconds=patience_seconds):
        with attempt:
            attempts += 1
            if failures:
                raise failures.pop(0)
    return attempts


async def test_an_outage_is_waited_out() -> None:
    assert await _run([ConnectionError("down"), ConnectionError("down")]) == 3


async def test_an_error_that_is_no_outage_is_raised_at_once() -> None:
    with pytest.raises(ValueError, match="bug"):
        await _run([ValueError("bug"), ConnectionError("down")])


async def test_an_outage_longer_than_the_patience_raises_the_last_error() -> None:
    with pytest.raises(ConnectionError, match="still down"):
        await _run([ConnectionError("still down")] * 1000, patience_seconds=0.3)
