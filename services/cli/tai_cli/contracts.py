"""Everything published in proto/: the event contracts and the gateway's OpenAPI document."""

from __future__ import annotations

from tai_events.contracts import render_contracts
from tai_gateway.api.app import render_openapi

OPENAPI_FILE = "openapi.json"


def published_contracts() -> dict[str, str]:
    """Return every proto/ file's relative path and exact text."""
    return {**render_contracts(), OPENAPI_FILE: render_openapi()}
