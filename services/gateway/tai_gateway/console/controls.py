"""Control requests from console callbacks: the role check, the command, the feedback."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

import dash
import flask
from dash import html
from dash.exceptions import PreventUpdate

from tai_gateway.auth import Principal
from tai_gateway.bridge import LoopBridge
from tai_gateway.console.views import error_alert
from tai_gateway.context import GatewayContext
from tai_gateway.control import ControlAction, ControlDeniedError, ControlReceipt
from tai_gateway.session import CONSOLE_CHANNEL, SessionUser, session_user
from tai_telemetry.logging import get_logger

PARAMETER_PATTERN = re.compile(r"^\s*([a-z][a-z0-9_]{0,63})\s*=\s*([^,]+?)\s*$")


def parse_parameters(text: str | None) -> dict[str, float]:
    """Parse ``name=value, name=value`` into numbers; raise ValueError naming a bad item."""
    parameters: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        match = PARAMETER_PATTERN.match(item)
        if match is None:
            raise ValueError(f"{item.strip()!r} is not name=number")
        try:
            parameters[match.group(1)] = float(match.group(2))
        except ValueError:
            raise ValueError(f"{match.group(2)!r} is not a number") from None
    return parameters


def control_feedback(
    context: GatewayContext,
    bridge: LoopBridge,
    action: ControlAction,
    call: Callable[[SessionUser], Coroutine[Any, Any, ControlReceipt]],
) -> Any:
    """Run a control call for the session user; 403 when the role is refused."""
    logger = get_logger("tai_gateway.console")
    user = session_user(context)
    if user is None:
        flask.abort(401)
    try:
        receipt = bridge.run(call(user))
    except ControlDeniedError:
        context.metrics.control_requests.labels(action.value, "denied").inc()
        logger.warning("control_denied", action=action.value, user=user.principal.username)
        flask.abort(403)
    except LookupError as error:
        return error_alert(str(error))
    except Exception as error:
        context.metrics.control_requests.labels(action.value, "failed").inc()
        logger.exception("control_failed", action=action.value)
        return error_alert(f"Could not send {action.value} ({type(error).__name__}); try again.")
    context.metrics.control_requests.labels(action.value, "published").inc()
    return html.Div(
        f"{receipt.command} sent (message {receipt.message_id}).",
        className="alert alert-success",
    )


def authorized(
    context: GatewayContext, bridge: LoopBridge, action: ControlAction, subject: str
) -> Principal:
    """Return the session's principal when its role allows ``action``; else 401/403.

    A refusal for the role is audited and raises a (rate-limited) alert, like a control call.
    """
    user = session_user(context)
    if user is None:
        flask.abort(401)
    try:
        bridge.run(
            context.control.authorize(
                user.principal, action, channel=CONSOLE_CHANNEL, subject=subject
            )
        )
    except ControlDeniedError:
        context.metrics.control_requests.labels(action.value, "denied").inc()
        get_logger("tai_gateway.console").warning(
            "control_denied", action=action.value, user=user.principal.username
        )
        flask.abort(403)
    return user.principal


def register_trading_control(
    app: dash.Dash,
    context: GatewayContext,
    bridge: LoopBridge,
    *,
    action: ControlAction,
    trigger: dash.Input,
    feedback: str,
    default_reason: str,
) -> None:
    """Register one kill-switch control (halt, resume, flatten): ``trigger`` sends ``action``.

    The reason comes from the shared reason box (or ``default_reason``); the role check,
    the audit and the feedback are ``control_feedback``'s.
    """

    @app.callback(
        dash.Output(feedback, "children"),
        trigger,
        dash.State("control-reason", "value"),
        prevent_initial_call=True,
    )
    def send(clicks: int | None, reason: str | None) -> Any:
        if not clicks:
            raise PreventUpdate
        text = (reason or default_reason)[:2000]
        return control_feedback(
            context,
            bridge,
            action,
            lambda user: context.control.request(
                user.principal, action, reason=text, channel=CONSOLE_CHANNEL
            ),
        )
