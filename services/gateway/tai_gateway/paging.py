"""Keyset pagination for the API's lists: newest first, a time window, an opaque cursor.

Every paged list is ordered by (time, key) descending. A page returns at most ``limit`` items
and, when more remain, a cursor naming its last item; the next page holds the items strictly
before it. Unlike offsets, a cursor neither skips nor repeats items while new rows arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
Key = str | int


class InvalidCursorError(ValueError):
    """A cursor that this API did not issue (or that was altered)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """The position after which the next page starts: the last item's time and key."""

    time: datetime
    key: Key

    def encode(self) -> str:
        """Return the cursor as an opaque URL-safe token."""
        raw = json.dumps({"t": self.time.isoformat(), "k": self.key}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Return the cursor a token stands for; raise InvalidCursorError when it is not one."""
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            time = datetime.fromisoformat(data["t"])
            key = data["k"]
        except (ValueError, TypeError, KeyError, UnicodeError, binascii.Error) as error:
            raise InvalidCursorError("not a cursor this API issued") from error
        if time.tzinfo is None or not isinstance(key, str | int) or isinstance(key, bool):
            raise InvalidCursorError("not a cursor this API issued")
        return cls(time, key)


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which page: at most ``limit`` items in [since, until), before ``cursor``."""

    limit: int
    cursor: Cursor | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a page holds at least one item")
        for bound in (self.since, self.until):
            if bound is not None and bound.tzinfo is None:
                raise ValueError("since and until must carry a time zone")


@dataclass(frozen=True, slots=True)
class Page(Generic[ItemT]):
    """Items of one page, newest first, and the cursor of the next page (None: the last)."""

    items: list[ItemT]
    next_cursor: Cursor | None


def page_of(
    items: Sequence[ItemT],
    request: PageRequest,
    *,
    time_of: Callable[[ItemT], datetime],
    key_of: Callable[[ItemT], str],
) -> Page[ItemT]:
    """Return one page of in-memory ``items`` (in any order), keyed by text."""

    def position(item: ItemT) -> tuple[datetime, str]:
        return time_of(item), key_of(item)

    chosen = [
        item
        for item in items
        if (request.since is None or time_of(item) >= request.since)
        and (request.until is None or time_of(item) < request.until)
        and (
            request.cursor is None
            or position(item) < (request.cursor.time, str(request.cursor.key))
        )
    ]
    chosen.sort(key=position, reverse=True)
    return trimmed(chosen, request.limit, time_of=time_of, key_of=key_of)


def trimmed(
    newest_first: Sequence[ItemT],
    limit: int,
    *,
    time_of: Callable[[ItemT], datetime],
    key_of: Callable[[ItemT], Key],
) -> Page[ItemT]:
    """Return the first ``limit`` items and a cursor when more were fetched (limit + 1)."""
    shown = list(newest_first[:limit])
    if len(newest_first) <= limit or not shown:
        return Page(shown, None)
    last = shown[-1]
    return Page(shown, Cursor(time_of(last), key_of(last)))
