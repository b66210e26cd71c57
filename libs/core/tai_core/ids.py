"""Deterministic ids: the same inputs always give the same id, so redeliveries dedupe."""

from __future__ import annotations

import hashlib


def deterministic_id(prefix: str, *parts: object) -> str:
    """Return ``prefix-<24 hex>`` from a SHA-256 over the parts (stable across runs)."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode("utf-8"))
    return f"{prefix}-{digest.hexdigest()[:24]}"
