"""The Dash trading console: the server and its guards, the page, one module per tab."""

from tai_gateway.console.server import (
    CALLBACK_PATH,
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    create_console,
    requested_control,
)

__all__ = [
    "CALLBACK_PATH",
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "create_console",
    "requested_control",
]
