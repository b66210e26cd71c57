"""The API's paged lists: newest first, a cursor that neither skips nor repeats, a time window."""

from __future__ import annotations

from datetime import timedelta

import httpx
from gateway_support import T0, VIEWER_PASSWORD, bearer, make_fill, token_for

from tai_store import Store


async def _fills(store: Store, *, same_time: bool = False) -> None:
    async with store.transaction() as unit:
        for number in range(1, 8):
            fill = make_fill(number)
            if same_time:
                fill = fill.model_copy(update={"filled_at": T0})
            await unit.fills.add(fill)


async def _walk(client: httpx.AsyncClient, token: str, path: str, **params: object) -> list[str]:
    """Follow the Link header from page to page; return every fill id in order."""
    seen: list[str] = []
    url: str | None = path
    query: dict[str, object] | None = {"limit": 3, **params}
    while url is not None:
        response = await client.get(url, params=query, headers=bearer(token))
        assert response.status_code == 200, response.text
        seen += [row["fill_id"] for row in response.json()]
        link = response.headers.get("Link")
        if link is None:
            assert "X-Next-Cursor" not in response.headers
            url = None
        else:
            assert link.endswith('>; rel="next"')
            assert response.headers["X-Next-Cursor"] in link
            url, query = link[1 : link.index(">")], None
    return seen


async def test_pages_follow_each_other_newest_first_without_gaps(
    api_client: httpx.AsyncClient, store: Store
) -> None:
    # Arrange
    await _fills(store)
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    # Act
    seen = await _walk(api_client, token, "/api/fills")
    # Assert
    assert seen == [f"fill-{number}" for number in range(7, 0, -1)]


async def test_items_of_the_same_instant_are_paged_by_their_key(
    api_client: httpx.AsyncClient, store: Store
) -> None:
    # Arrange: seven fills at one instant: only the key orders them
    await _fills(store, same_time=True)
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    # Act
    seen = await _walk(api_client, token, "/api/fills")
    # Assert
    assert seen == sorted((f"fill-{number}" for number in range(1, 8)), reverse=True)


async def test_since_and_until_keep_a_window_across_pages(
    api_client: httpx.AsyncClient, store: Store
) -> None:
    # Arrange: fill n is n hours after T0
    await _fills(store)
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    since, until = T0 + timedelta(hours=2), T0 + timedelta(hours=6)
    # Act
    seen = await _walk(
        api_client, token, "/api/fills", since=since.isoformat(), until=until.isoformat()
    )
    # Assert: 2 <= n < 6
    assert seen == ["fill-5", "fill-4", "fill-3", "fill-2"]


async def test_a_cursor_the_api_did_not_issue_is_refused(api_client: httpx.AsyncClient) -> None:
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    response = await api_client.get(
        "/api/fills", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=bearer(token)
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("cursor:")


async def test_an_empty_or_naive_time_window_is_refused(api_client: httpx.AsyncClient) -> None:
    token = await token_for(api_client, "victor", VIEWER_PASSWORD)
    empty = await api_client.get(
        "/api/fills",
        params={"since": T0.isoformat(), "until": T0.isoformat()},
        headers=bearer(token),
    )
    naive = await api_client.get(
        "/api/fills", params={"since": "2024-03-04T12:00:00"}, headers=bearer(token)
    )
    assert empty.status_code == 422
    assert empty.json()["detail"] == "since must be before until"
    assert naive.status_code == 422
