"""Property: upserting any valid bars twice leaves exactly the rows one upsert leaves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from tai_events import BarClosed, Timeframe
from tai_store import Store, StoredBar
from tai_store.models import OhlcvRow

prices = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def bars(draw: st.DrawFn) -> BarClosed:
    timeframe = draw(st.sampled_from(list(Timeframe)))
    opened_at = draw(
        st.datetimes(
            min_value=datetime(2000, 1, 1),
            max_value=datetime(2040, 1, 1),
            timezones=st.just(UTC),
        )
    )
    open_price, close_price = draw(prices), draw(prices)
    low = min(open_price, close_price) * draw(st.floats(min_value=0.5, max_value=1.0))
    high = max(open_price, close_price) * draw(st.floats(min_value=1.0, max_value=2.0))
    return BarClosed(
        symbol=draw(st.sampled_from(["EURUSD", "GOOG", "BTC-USD"])),
        timeframe=timeframe,
        opened_at=opened_at,
        closed_at=opened_at + timeframe.duration,
        open=open_price,
        high=high,
        low=low,
        close=close_price,
        volume=draw(st.floats(min_value=0, max_value=1e12)),
        source=draw(st.sampled_from(["replay", "yfinance"])),
    )


async def _upsert_twice(url: str, batch: list[BarClosed]) -> tuple[list[StoredBar], ...]:
    store = Store(url)
    try:
        async with store.transaction() as unit:
            await unit.session.execute(delete(OhlcvRow))
        snapshots = []
        for _ in range(2):
            async with store.transaction() as unit:
                await unit.ohlcv.upsert_many(batch)
            async with store.transaction() as unit:
                stored = []
                for symbol, timeframe in sorted({(bar.symbol, bar.timeframe) for bar in batch}):
                    stored.extend(await unit.ohlcv.range(symbol, timeframe))
                snapshots.append(stored)
        return tuple(snapshots)
    finally:
        await store.close()


def test_upserting_the_same_bars_twice_gives_the_same_rows(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bars.db'}"

    async def migrate() -> None:
        store = Store(url)
        await store.migrate()
        await store.close()

    asyncio.run(migrate())

    @settings(
        max_examples=40, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow]
    )
    @given(st.lists(bars(), max_size=20))
    def check(batch: list[BarClosed]) -> None:
        once, twice = asyncio.run(_upsert_twice(url, batch))

        last_wins = {(bar.symbol, bar.timeframe, bar.opened_at): bar for bar in batch}
        expected = sorted(
            last_wins.values(), key=lambda bar: (bar.symbol, bar.timeframe, bar.opened_at)
        )
        assert once == twice
        assert [stored.to_event() for stored in once] == expected

    check()
