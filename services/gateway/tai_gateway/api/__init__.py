"""The REST API: health, readiness, metrics, tokens, ledger reads and admin controls."""

from tai_gateway.api.app import create_api

__all__ = ["create_api"]
