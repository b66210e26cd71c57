"""The System tab: readiness, queue depths, dead letters (requeue, discard) and the audit log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dash
import pandas as pd
from dash import html
from dash.exceptions import PreventUpdate

from tai_gateway.auth import Principal, Role
from tai_gateway.bridge import LoopBridge
from tai_gateway.console.controls import authorized
from tai_gateway.console.refresh import on_tab_refresh
from tai_gateway.console.views import error_alert, format_times, table, table_or_empty
from tai_gateway.console.widgets import button, card, loading, text_input
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction
from tai_gateway.operations import (
    DEFAULT_QUEUES,
    DeadLetterNotFoundError,
    DeadLetterView,
    QueueStats,
    RequeueTargetMissingError,
)
from tai_gateway.session import CONSOLE_CHANNEL, require_principal
from tai_telemetry.logging import get_logger

AUDIT_ROWS = 50
DEAD_LETTER_ROWS = 50


DEAD_LETTER_ACTIONS = {
    "requeue-button": ControlAction.REQUEUE_DEAD_LETTER,
    "discard-button": ControlAction.DISCARD_DEAD_LETTER,
}
"""The System tab's dead-letter buttons and the action each asks for."""


def layout(is_admin: bool) -> list[Any]:
    """Return the System tab's body (dead letters for admins only)."""
    children: list[Any] = [
        html.Div(
            className="tai-grid",
            children=[
                card("Readiness", html.Div(id="readiness")),
                card("Queues", loading("queues")),
            ],
        ),
    ]
    if is_admin:
        children.append(
            card(
                "Dead letters (admin)",
                html.Div(
                    className="tai-row",
                    children=[
                        text_input("dead-letter-id", "message id"),
                        button("Requeue", "requeue-button", "success"),
                        button("Discard", "discard-button", "danger"),
                    ],
                ),
                html.Div(id="dead-letter-feedback"),
                html.Div(id="dead-letters"),
            )
        )
    else:
        # The refresh callback writes here for every role; only admins see (and get) letters.
        children.append(html.Div(id="dead-letters", hidden=True))
    children.append(card("Audit log", html.Div(id="audit")))
    return children


def readiness_frame(checks: Mapping[str, bool]) -> pd.DataFrame:
    """Return one row per readiness check: ready or NOT READY."""
    return pd.DataFrame(
        [{"check": name, "status": "ready" if ok else "NOT READY"} for name, ok in checks.items()]
    )


def queues_frame(stats: Sequence[QueueStats]) -> pd.DataFrame:
    """Return each watched queue's depth and consumers (blank, with a note, when unknown)."""
    return pd.DataFrame(
        [
            {
                "queue": item.queue,
                "messages": "" if item.messages is None else item.messages,
                "consumers": "" if item.consumers is None else item.consumers,
                "note": item.error,
            }
            for item in stats
        ]
    )


def dead_letters_frame(letters: Sequence[DeadLetterView]) -> pd.DataFrame:
    """Return the dead letters: id, type, routing key, queue and the reason (shortened)."""
    return pd.DataFrame(
        [
            {
                "message_id": letter.message_id,
                "type": letter.message_type,
                "routing_key": letter.routing_key,
                "queue": letter.queue,
                "reason": letter.reason[:200],
            }
            for letter in letters
        ]
    )


def audit_frame(audit: pd.DataFrame) -> pd.DataFrame:
    """Return the audit rows the console shows (when, who, what, on what, outcome)."""
    columns = [
        column
        for column in ("occurred_at", "actor", "action", "subject", "outcome")
        if column in audit
    ]
    return format_times(audit[columns], ["occurred_at"])


def register(app: dash.Dash, context: GatewayContext, bridge: LoopBridge) -> None:
    """Register the System tab's refresh and the admin's dead-letter controls."""
    logger = get_logger("tai_gateway.console")

    def readiness() -> Any:
        try:
            checks = bridge.run(context.readiness())
        except Exception as error:
            checks = {"gateway": False}
            logger.warning("readiness_check_failed", error=type(error).__name__)
        return table(readiness_frame(checks), "readiness-table")

    def queues() -> Any:
        try:
            stats = bridge.run(context.operations.queue_stats(DEFAULT_QUEUES))
        except Exception as error:
            return error_alert(f"The broker did not answer ({type(error).__name__}).")
        return table(queues_frame(stats), "queues-table")

    def dead_letters() -> Any:
        try:
            letters = bridge.run(context.operations.dead_letters(DEAD_LETTER_ROWS))
        except Exception as error:
            return error_alert(f"Could not read dead letters ({type(error).__name__}).")
        return table_or_empty(dead_letters_frame(letters), "dead-letters-table", "No dead letters")

    def audit() -> Any:
        try:
            rows = context.ledger.audit_log(AUDIT_ROWS)
        except Exception as error:
            logger.exception("console_audit_read_failed")
            return error_alert(f"Could not read the audit log ({type(error).__name__}).")
        return table_or_empty(audit_frame(rows), "audit-table", "No audit entries yet")

    @on_tab_refresh(
        app,
        context,
        "system",
        dash.Output("readiness", "children"),
        dash.Output("queues", "children"),
        dash.Output("dead-letters", "children"),
        dash.Output("audit", "children"),
    )
    def refresh_system(principal: Principal) -> tuple[Any, ...]:
        if not principal.role.allows(Role.ADMIN):
            hidden = html.Div(
                "The audit log is visible to admins.", className="tai-empty", id="audit-hidden"
            )
            return readiness(), queues(), dash.no_update, hidden
        return readiness(), queues(), dead_letters(), audit()

    @app.callback(
        dash.Output("dead-letter-feedback", "children"),
        dash.Input("requeue-button", "n_clicks"),
        dash.Input("discard-button", "n_clicks"),
        dash.State("dead-letter-id", "value"),
        prevent_initial_call=True,
    )
    def settle_dead_letter(
        _requeue: int | None, _discard: int | None, message_id: str | None
    ) -> Any:
        require_principal(context, Role.VIEWER)
        action = DEAD_LETTER_ACTIONS.get(str(dash.ctx.triggered_id))
        if action is None:
            raise PreventUpdate
        principal = authorized(context, bridge, action, (message_id or "").strip()[:128])
        if not message_id:
            return error_alert("Enter the message id of a dead letter.")
        try:
            letter = bridge.run(
                settle_dead_letter(
                    context.operations,
                    context.ledger,
                    principal,
                    action,
                    message_id.strip(),
                    channel=CONSOLE_CHANNEL,
                )
            )
        except DeadLetterNotFoundError:
            return error_alert(f"No dead letter has id {message_id}.")
        except RequeueTargetMissingError as error:
            return error_alert(f"Its queue {error} no longer exists: discard it instead.")
        except Exception as error:
            return error_alert(f"The broker refused ({type(error).__name__}).")
        return html.Div(
            f"Dead letter {letter.message_id}: {action.value.removeprefix('dead_letter_')}d.",
            className="alert alert-success",
        )
