"""Why a market data source could not answer; each kind is a reason to fail over."""

from __future__ import annotations


class SourceError(Exception):
    """A source failed to deliver data; ``reason`` is a short metric label."""

    reason = "error"

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.detail = ""
        """The start of the response body, when there was one (for diagnosis)."""


class SourceUnavailableError(SourceError):
    """The source answered with a server error or could not be reached."""

    reason = "unavailable"


class SourceTimeoutError(SourceError):
    """The source did not answer in time."""

    reason = "timeout"


class RateLimitedError(SourceError):
    """The source (or our own request budget for it) refuses more requests for now."""

    reason = "rate_limited"

    def __init__(self, source: str, message: str, retry_after_seconds: float | None = None) -> None:
        super().__init__(source, message)
        self.retry_after_seconds = retry_after_seconds


class InvalidDataError(SourceError):
    """The source answered, but the payload is malformed or fails validation."""

    reason = "invalid_data"


class AuthenticationError(SourceError):
    """The source refused our credentials (or none are configured)."""

    reason = "authentication"


class UnsupportedRequestError(SourceError):
    """The source cannot serve this instrument or timeframe."""

    reason = "unsupported"


class StreamDisconnectedError(SourceError):
    """A live stream was refused or cut off by the server, or ended on its own."""

    reason = "disconnected"


class StreamProtocolError(StreamDisconnectedError):
    """The stream server refused the client's protocol version: retrying soon cannot help."""

    reason = "protocol_refused"


class StreamStalledError(SourceError):
    """A live stream went silent while the market was open."""

    reason = "stalled"
