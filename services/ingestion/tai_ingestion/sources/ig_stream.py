"""IG live prices over Lightstreamer (``lightstreamer-client-lib``), behind a small interface.

After a REST login, the stream authenticates as user ``<account id>`` with password
``CST-<cst>|XST-<security token>`` at the session's ``lightstreamerEndpoint``. We subscribe
in DISTINCT mode to ``CHART:<epic>:TICK`` with fields BID, OFR, LTP, LTV and UTM (the
update time in epoch milliseconds, UTC): every tick arrives, with an unambiguous time.
The library calls listeners on its own thread; updates are handed to the event loop with
``call_soon_threadsafe`` and parsed there. A server error (refused credentials, session
closed by the server) or a refused subscription ends the ``ticks`` iteration with
``StreamDisconnectedError``; the library itself retries transient network losses.

Protocol: IG's servers speak the Lightstreamer protocol of Server 7.3 (TLCP 2.4.0) and
answer a newer client with ``CONERR,65,Unsupported protocol version`` (the library's
``onServerError(65, ...)``); ``lightstreamer-client-lib`` is pinned to 1.0.x for that
(requirements.in). Such a refusal ends the iteration with ``StreamProtocolError``, and the
session tokens are kept: they were not what the server refused, so reconnecting does not log
in over REST again (other failures drop them, as they may be what was refused).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Protocol

from pydantic import ValidationError

from tai_events.market import TickReceived
from tai_ingestion.errors import StreamDisconnectedError, StreamProtocolError
from tai_ingestion.instruments import InstrumentMap
from tai_ingestion.sources.ig import IgRestClient
from tai_telemetry.logging import get_logger

TICK_FIELDS = ("BID", "OFR", "LTP", "LTV", "UTM")
PROTOCOL_REFUSED_CODES = frozenset({60, 65})
"""Lightstreamer server errors refusing the client itself: 60 client version, 65 protocol."""

UpdateCallback = Callable[[str, Mapping[str, str | None]], None]


class FailureCallback(Protocol):
    """Told once when the connection fails for good: the reason, and the server's code."""

    def __call__(self, message: str, code: int | None = None) -> None:
        """Report the failure."""
        ...


def protocol_refused(message: str, code: int | None) -> bool:
    """Return True when the server refused the client's protocol or version."""
    return code in PROTOCOL_REFUSED_CODES or "protocol version" in message.lower()


def client_version() -> str:
    """Return the installed ``lightstreamer-client-lib`` version (for reports)."""
    try:
        return metadata.version("lightstreamer-client-lib")
    except metadata.PackageNotFoundError:
        return "not installed"


class StreamHandle(Protocol):
    """A live streaming connection."""

    def disconnect(self) -> None:
        """Unsubscribe and disconnect."""
        ...


class StreamConnector(Protocol):
    """Opens a streaming connection and delivers (item, fields) updates to a callback."""

    def connect(
        self,
        endpoint: str,
        *,
        user: str,
        password: str,
        items: list[str],
        fields: tuple[str, ...],
        on_update: UpdateCallback,
        on_failure: FailureCallback,
    ) -> StreamHandle:
        """Connect, subscribe to ``items``; call ``on_update`` per update, ``on_failure`` once."""
        ...


def tick_item(epic: str) -> str:
    """Return the Lightstreamer item of an epic's tick chart."""
    return f"CHART:{epic}:TICK"


def parse_tick(
    symbol: str, fields: Mapping[str, str | None], *, source: str = "ig"
) -> TickReceived | None:
    """Turn one CHART tick update into a quote; None when it lacks a usable bid/offer/time."""
    try:
        bid = float(fields["BID"] or "")
        ask = float(fields["OFR"] or "")
        quoted_at = datetime.fromtimestamp(int(fields["UTM"] or "") / 1000, UTC)
        last_text = fields.get("LTP")
        volume_text = fields.get("LTV")
        return TickReceived(
            symbol=symbol,
            quoted_at=quoted_at,
            bid=bid,
            ask=ask,
            last=float(last_text) if last_text else None,
            volume=float(volume_text) if volume_text else 0.0,
            source=source,
        )
    except (KeyError, ValueError, OverflowError, ValidationError):
        return None


class LightstreamerConnector:
    """The real connector, on ``lightstreamer-client-lib``."""

    def connect(
        self,
        endpoint: str,
        *,
        user: str,
        password: str,
        items: list[str],
        fields: tuple[str, ...],
        on_update: UpdateCallback,
        on_failure: FailureCallback,
    ) -> StreamHandle:
        """Connect to ``endpoint`` and subscribe to ``items`` in DISTINCT mode."""
        from lightstreamer.client import (  # type: ignore[import-untyped]  # noqa: PLC0415
            ClientListener,
            LightstreamerClient,
            Subscription,
            SubscriptionListener,
        )

        class _Listener(SubscriptionListener):  # type: ignore[misc]
            def onItemUpdate(self, update: Any) -> None:  # noqa: N802 - library's name
                on_update(
                    str(update.getItemName()),
                    {name: update.getValue(name) for name in fields},
                )

            def onSubscriptionError(self, code: int, message: str) -> None:  # noqa: N802
                on_failure(f"subscription refused ({code}): {message}")

        class _ConnectionListener(ClientListener):  # type: ignore[misc]
            def onServerError(self, code: int, message: str) -> None:  # noqa: N802
                # Only called when the server refused or closed the session for good.
                on_failure(f"server error ({code}): {message}", code)

        client = LightstreamerClient(endpoint, None)
        client.connectionDetails.setUser(user)
        client.connectionDetails.setPassword(password)
        client.addListener(_ConnectionListener())
        client.connect()
        subscription = Subscription("DISTINCT", items, list(fields))
        subscription.addListener(_Listener())
        client.subscribe(subscription)
        return _LightstreamerHandle(client, subscription)


class _LightstreamerHandle:
    def __init__(self, client: Any, subscription: Any) -> None:
        self._client = client
        self._subscription = subscription

    def disconnect(self) -> None:
        self._client.unsubscribe(self._subscription)
        self._client.disconnect()


class IgTickStream:
    """Live IG quotes for the system's symbols."""

    name = "ig_stream"

    def __init__(
        self,
        client: IgRestClient,
        instruments: InstrumentMap,
        connector: StreamConnector | None = None,
        *,
        max_queued: int = 10_000,
    ) -> None:
        self._client = client
        self._instruments = instruments
        self._connector: StreamConnector = connector or LightstreamerConnector()
        self._queue: asyncio.Queue[TickReceived | StreamDisconnectedError | None] = asyncio.Queue(
            maxsize=max_queued
        )
        self._failure: StreamDisconnectedError | None = None
        self._handle: StreamHandle | None = None
        self._dropped_updates = 0
        self._log = get_logger("ingestion.ig_stream")

    @property
    def dropped_updates(self) -> int:
        """Return how many updates could not be parsed or queued."""
        return self._dropped_updates

    async def ticks(self, symbols: list[str]) -> AsyncIterator[TickReceived]:
        """Yield quotes for ``symbols`` until ``close()``; raise when the stream fails."""
        session = await self._client.session()
        by_item: dict[str, str] = {}
        for symbol in symbols:
            epic = self._instruments.get(symbol).ig_epic
            if epic is not None:
                by_item[tick_item(epic)] = symbol
        loop = asyncio.get_running_loop()

        def deliver(item: str, fields: Mapping[str, str | None]) -> None:
            loop.call_soon_threadsafe(self._accept, by_item.get(item), dict(fields))

        def fail(message: str, code: int | None = None) -> None:
            loop.call_soon_threadsafe(self._fail, message, code)

        self._handle = self._connector.connect(
            session.lightstreamer_endpoint,
            user=session.account_id,
            password=f"CST-{session.cst}|XST-{session.security_token}",
            items=list(by_item),
            fields=TICK_FIELDS,
            on_update=deliver,
            on_failure=fail,
        )
        while (item := await self._queue.get()) is not None:
            if isinstance(item, StreamDisconnectedError):
                raise item
            yield item
            if self._failure is not None:
                raise self._failure

    def _fail(self, message: str, code: int | None = None) -> None:
        failure: StreamDisconnectedError
        if protocol_refused(message, code):
            failure = StreamProtocolError(
                self.name,
                f"the server refused lightstreamer-client-lib {client_version()}'s protocol: "
                f"{message}",
            )
            self._log.error("stream protocol refused", reason=message, code=code)
        else:
            self._log.warning("stream failed", reason=message, code=code)
            # The tokens may be what the server refused: log in afresh on the next connection.
            self._client.forget_session()
            failure = StreamDisconnectedError(self.name, message)
        try:
            self._queue.put_nowait(failure)
        except asyncio.QueueFull:
            self._failure = failure  # seen after the next tick the consumer takes

    def _accept(self, symbol: str | None, fields: dict[str, str | None]) -> None:
        tick = parse_tick(symbol, fields, source="ig") if symbol is not None else None
        if tick is None:
            self._dropped_updates += 1
            self._log.warning("unusable stream update", symbol=symbol, fields=fields)
            return
        try:
            self._queue.put_nowait(tick)
        except asyncio.QueueFull:
            self._dropped_updates += 1
            self._log.error("tick queue full; update dropped", symbol=symbol)

    async def close(self) -> None:
        """Disconnect and end the ``ticks`` iteration (ticks not yet taken are dropped)."""
        if self._handle is not None:
            self._handle.disconnect()
            self._handle = None
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
