"""Keyset paging: cursors round-trip, forged ones are refused, pages partition a list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tai_gateway.paging import Cursor, InvalidCursorError, PageRequest, page_of

T0 = datetime(2024, 3, 4, tzinfo=UTC)


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.one_of(st.text(max_size=40), st.integers(min_value=-(2**53), max_value=2**53)),
)
def test_a_cursor_decodes_to_what_was_encoded(time: datetime, key: str | int) -> None:
    assert Cursor.decode(Cursor(time, key).encode()) == Cursor(time, key)


@pytest.mark.parametrize(
    "token",
    ["", "!!!", "eyJ0IjoxfQ", "bm90LWpzb24", "eyJ0IjoiMjAyNC0wMy0wNFQwMDowMDowMCIsImsiOiJhIn0"],
)
def test_anything_else_is_not_a_cursor(token: str) -> None:
    # the last one is a cursor without a time zone
    with pytest.raises(InvalidCursorError):
        Cursor.decode(token)


@given(st.integers(min_value=1, max_value=12), st.integers(min_value=0, max_value=30))
def test_pages_partition_the_items_newest_first(limit: int, count: int) -> None:
    # Arrange: some items share an instant
    items = [(T0 + timedelta(minutes=number // 3), f"k{number:03d}") for number in range(count)]
    request = PageRequest(limit)
    seen: list[tuple[datetime, str]] = []
    # Act
    while True:
        page = page_of(items, request, time_of=lambda item: item[0], key_of=lambda item: item[1])
        assert len(page.items) <= limit
        seen += page.items
        if page.next_cursor is None:
            break
        request = PageRequest(limit, page.next_cursor)
    # Assert
    assert seen == sorted(items, reverse=True)


def test_a_page_request_needs_aware_bounds_and_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="time zone"):
        PageRequest(10, since=datetime(2024, 3, 4))
    with pytest.raises(ValueError, match="at least one"):
        PageRequest(0)
