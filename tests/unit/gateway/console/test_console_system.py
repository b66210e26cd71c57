"""The System tab's pure views: readiness, queues, dead letters and the audit log."""

from __future__ import annotations

import pandas as pd
from gateway_support import T0

from tai_gateway.console.system import (
    audit_frame,
    dead_letters_frame,
    queues_frame,
    readiness_frame,
)
from tai_gateway.operations import DeadLetterView, QueueStats


def test_readiness_says_which_check_is_not_ready() -> None:
    frame = readiness_frame({"store": True, "bus": False})
    assert frame.to_dict("records") == [
        {"check": "store", "status": "ready"},
        {"check": "bus", "status": "NOT READY"},
    ]


def test_a_queue_without_numbers_shows_blanks_and_why() -> None:
    frame = queues_frame(
        [QueueStats("tai.risk.orders", 3, 1), QueueStats("tai.gone", None, None, "missing")]
    )
    assert frame.to_dict("records") == [
        {"queue": "tai.risk.orders", "messages": 3, "consumers": 1, "note": ""},
        {"queue": "tai.gone", "messages": "", "consumers": "", "note": "missing"},
    ]


def test_dead_letters_show_their_routing_and_a_shortened_reason() -> None:
    letter = DeadLetterView(
        message_id="m-1",
        message_type="order.requested",
        routing_key="order.requested",
        exchange="tai.events",
        queue="tai.risk.orders",
        reason="r" * 500,
        body="{}",
    )
    (row,) = dead_letters_frame([letter]).to_dict("records")
    assert row["message_id"] == "m-1"
    assert row["queue"] == "tai.risk.orders"
    assert len(row["reason"]) == 200
    assert "body" not in row


def test_the_audit_view_keeps_when_who_what_and_outcome() -> None:
    audit = pd.DataFrame(
        [
            {
                "occurred_at": T0,
                "actor": "alice",
                "action": "halt",
                "subject": "",
                "outcome": "published",
                "details": "{}",
            }
        ]
    )
    frame = audit_frame(audit)
    assert list(frame.columns) == ["occurred_at", "actor", "action", "subject", "outcome"]
