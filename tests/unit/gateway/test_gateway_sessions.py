"""Server-side sessions: open, look up with the stored role, expire, revoke, count."""

from __future__ import annotations

from datetime import timedelta

from tai_core.clock import FakeClock
from tai_gateway.auth import Principal, Role
from tai_gateway.sessions import SessionStore
from tai_store import Store

HOUR = timedelta(hours=1)


async def test_an_open_session_names_its_user_with_the_stored_role(
    store: Store, clock: FakeClock, users: None
) -> None:
    sessions = SessionStore(store, clock)
    opened = await sessions.open("tom", channel="api", source="10.0.0.1", lifetime=HOUR)
    assert await sessions.principal(opened.session_id, "tom") == Principal("tom", Role.TRADER)


async def test_a_session_is_nobody_elses(store: Store, clock: FakeClock, users: None) -> None:
    sessions = SessionStore(store, clock)
    opened = await sessions.open("tom", channel="api", source="10.0.0.1", lifetime=HOUR)
    assert await sessions.principal(opened.session_id, "alice") is None
    assert await sessions.principal("made-up-session-id", "tom") is None


async def test_a_session_ends_at_its_expiry(store: Store, clock: FakeClock, users: None) -> None:
    sessions = SessionStore(store, clock)
    opened = await sessions.open("tom", channel="console", source="10.0.0.1", lifetime=HOUR)
    clock.advance(HOUR - timedelta(seconds=1))
    assert await sessions.principal(opened.session_id, "tom") is not None
    clock.advance(timedelta(seconds=1))
    assert await sessions.principal(opened.session_id, "tom") is None


async def test_revoking_a_user_ends_every_channel_and_only_theirs(
    store: Store, clock: FakeClock, users: None
) -> None:
    sessions = SessionStore(store, clock)
    api = await sessions.open("tom", channel="api", source="a", lifetime=HOUR)
    console = await sessions.open("tom", channel="console", source="a", lifetime=HOUR)
    other = await sessions.open("alice", channel="api", source="a", lifetime=HOUR)
    ended = await sessions.revoke_user("tom")
    assert ended == 2
    assert await sessions.principal(api.session_id, "tom") is None
    assert await sessions.principal(console.session_id, "tom") is None
    assert await sessions.principal(other.session_id, "alice") is not None


async def test_live_sessions_are_counted_per_channel(
    store: Store, clock: FakeClock, users: None
) -> None:
    sessions = SessionStore(store, clock)
    for channel in ("api", "api", "console"):
        await sessions.open("tom", channel=channel, source="a", lifetime=HOUR)
    await sessions.open("alice", channel="api", source="a", lifetime=timedelta(minutes=1))
    clock.advance(timedelta(minutes=2))
    counts = await sessions.counts()
    assert (counts["tom"].api, counts["tom"].console) == (2, 1)
    assert "alice" not in counts


async def test_the_store_keeps_no_usable_session_id(
    store: Store, clock: FakeClock, users: None
) -> None:
    from sqlalchemy import select  # noqa: PLC0415

    from tai_store.models_auth import UserSessionRow  # noqa: PLC0415

    opened = await SessionStore(store, clock).open("tom", channel="api", source="a", lifetime=HOUR)
    async with store.transaction() as unit:
        stored = (await unit.session.scalars(select(UserSessionRow.session_hash))).all()
    assert opened.session_id not in stored
    assert len(stored) == 1
