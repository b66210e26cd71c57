"""Input guards of the REST API: strict JSON, bounded bodies, safe 4xx answers.

- JSON bodies are parsed strictly: ``NaN``, ``Infinity`` and numbers that overflow to
  infinity (``1e309``) are refused as malformed JSON instead of reaching the models.
- A validation error (422) never echoes a huge or non-finite value back: inputs are
  summarised, messages and locations truncated, and the answer is always valid JSON.
- A malformed body sent to a control route is a refused action: it is audited with the
  caller (when the bearer token is valid) or as anonymous.

The body size itself is capped by FastAPI's ``max_body_size`` (413 before the body is read).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

MAXIMUM_ECHOED_TEXT = 100
"""Longest input string a 422 repeats; longer ones are described, not echoed."""
MAXIMUM_MESSAGE = 300
MAXIMUM_ERRORS = 20
INVALID_REQUEST = "invalid_request"
"""Audit outcome of a control call refused for a malformed body."""


class NonFiniteNumberError(ValueError):
    """A JSON document holds NaN, Infinity or a number too large for a float."""


def _refuse_constant(name: str) -> float:
    raise NonFiniteNumberError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumberError("a number overflows to infinity")
    return value


def loads_strict(body: bytes | str) -> Any:
    """Parse JSON, refusing NaN/Infinity and overflowing numbers with a JSONDecodeError."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except NonFiniteNumberError as error:
        raise json.JSONDecodeError(f"{error}: only finite numbers are accepted", "", 0) from None


class StrictJsonRequest(Request):
    """A request whose ``json()`` refuses non-finite numbers."""

    async def json(self) -> Any:
        """Return the body parsed strictly (see ``loads_strict``)."""
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """An API route reading JSON bodies through ``StrictJsonRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler so that it parses the body strictly."""
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler


def _describe(value: Any) -> Any:
    """Return an input safe to echo: short and finite, else a description of it."""
    if isinstance(value, float) and not math.isfinite(value):
        return "<non-finite number>"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**18:
        return "<large integer>"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAXIMUM_ECHOED_TEXT else f"<text of {len(value)} characters>"
    if isinstance(value, dict | list | tuple):
        kind = "object" if isinstance(value, dict) else "array"
        return f"<{kind} of {len(value)} items>"
    return f"<{type(value).__name__}>"


def _short(text: object, limit: int = MAXIMUM_MESSAGE) -> str:
    rendered = str(text)
    return rendered if len(rendered) <= limit else rendered[:limit] + "..."


def safe_errors(errors: Any) -> list[dict[str, Any]]:
    """Return validation errors that are small, finite and plain JSON."""
    safe: list[dict[str, Any]] = []
    for error in list(errors)[:MAXIMUM_ERRORS]:
        item: dict[str, Any] = {
            "type": _short(error.get("type", "invalid"), 64),
            "loc": [
                part if isinstance(part, int) else _short(part, 64)
                for part in list(error.get("loc", ()))[:8]
            ],
            "msg": _short(error.get("msg", "")),
        }
        if "input" in error:
            item["input"] = _describe(error["input"])
        context = error.get("ctx")
        if isinstance(context, dict):
            item["ctx"] = {
                _short(key, 64): _short(_describe(value)) for key, value in context.items()
            }
        safe.append(item)
    return safe


def control_action_of(route: BaseRoute | None) -> Any:
    """Return the control action a route's ``ControlCaller`` dependency names, if any."""
    if not isinstance(route, APIRoute):
        return None
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        action = getattr(dependant.call, "action", None)
        if action is not None:
            return action
        pending.extend(dependant.dependencies)
    return None
