"""Shape checks of Dash callback requests, so that a malformed one is a 400, never a 500.

Dash trusts the renderer's JSON: a list instead of an object, an unknown output, a missing
``inputs`` or a wrong number of them raise deep inside Dash (500). The console checks the
envelope against the registered callback first, and refuses NaN/Infinity like the API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tai_gateway.guards import loads_strict

MAXIMUM_CHANGED_PROPERTIES = 64


class MalformedCallbackError(ValueError):
    """The callback request does not have the shape Dash expects; the message says how."""


def _is_dependency(item: object) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("id"), str | dict)
        and isinstance(item.get("property"), str)
    )


def _check_dependencies(name: str, items: object, expected: int | None) -> None:
    if not isinstance(items, list):
        raise MalformedCallbackError(f"{name} must be a list")
    for item in items:
        # a wildcard (ALL) dependency is a list of concrete ones
        entries = item if isinstance(item, list) else [item]
        if not all(_is_dependency(entry) for entry in entries):
            raise MalformedCallbackError(f"each of {name} needs an id and a property")
    if expected is not None and len(items) != expected:
        raise MalformedCallbackError(
            f"{name} has {len(items)} entries; the callback takes {expected}"
        )


def parse_callback_request(body: bytes, callbacks: Mapping[str, Any]) -> dict[str, Any]:
    """Return the callback request parsed and checked, or raise MalformedCallbackError."""
    try:
        payload = loads_strict(body)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as error:
        raise MalformedCallbackError(f"not valid JSON ({type(error).__name__})") from None
    if not isinstance(payload, dict):
        raise MalformedCallbackError("the body must be a JSON object")
    output = payload.get("output")
    if not isinstance(output, str) or output not in callbacks:
        raise MalformedCallbackError("unknown callback output")
    registered = callbacks[output]
    outputs = payload.get("outputs")
    output_items = outputs if isinstance(outputs, list) else [outputs]
    _check_dependencies("outputs", output_items, None)
    _check_dependencies("inputs", payload.get("inputs"), len(registered.get("inputs", [])))
    _check_dependencies("state", payload.get("state", []), len(registered.get("state", [])))
    changed = payload.get("changedPropIds", [])
    if (
        not isinstance(changed, list)
        or len(changed) > MAXIMUM_CHANGED_PROPERTIES
        or not all(isinstance(prop, str) for prop in changed)
    ):
        raise MalformedCallbackError("changedPropIds must be a short list of strings")
    return payload
