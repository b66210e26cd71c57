"""The back-off policy: free failures, then a doubling wait up to a ceiling."""

from __future__ import annotations

from datetime import timedelta

import pytest
from gateway_support import T0
from hypothesis import given
from hypothesis import strategies as st

from tai_gateway.throttle import BackoffPolicy, account_key, source_key

POLICY = BackoffPolicy(
    free_failures=5,
    base_delay=timedelta(seconds=2),
    max_delay=timedelta(minutes=15),
    forget_after=timedelta(hours=1),
)


def test_the_free_failures_cost_nothing() -> None:
    assert [POLICY.blocked_until(failures, T0) for failures in range(5)] == [None] * 5


def test_each_failure_past_the_free_ones_doubles_the_wait() -> None:
    waits = [POLICY.blocked_until(failures, T0) for failures in (5, 6, 7, 8)]
    assert [wait - T0 for wait in waits if wait is not None] == [
        timedelta(seconds=seconds) for seconds in (2, 4, 8, 16)
    ]


@given(st.integers(min_value=5, max_value=10_000))
def test_the_wait_never_exceeds_the_ceiling(failures: int) -> None:
    blocked = POLICY.blocked_until(failures, T0)
    assert blocked is not None
    assert timedelta(seconds=2) <= blocked - T0 <= timedelta(minutes=15)


@pytest.mark.parametrize(
    ("free", "base", "ceiling"),
    [(0, 2, 60), (3, 0, 60), (3, 10, 5)],
)
def test_a_nonsensical_policy_is_refused(free: int, base: int, ceiling: int) -> None:
    with pytest.raises(ValueError, match="must"):
        BackoffPolicy(free, timedelta(seconds=base), timedelta(seconds=ceiling), timedelta(hours=1))


def test_account_keys_ignore_case_and_stay_bounded() -> None:
    assert account_key("Alice", "10.0.0.1") == account_key("alice", "10.0.0.1")
    assert account_key("alice", "10.0.0.1") != account_key("alice", "10.0.0.2")
    assert len(account_key("x" * 1000, "10.0.0.1")) <= 256
    assert source_key("10.0.0.1") != account_key("", "10.0.0.1")
