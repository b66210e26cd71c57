"""Deterministic synthetic bars: a seeded bootstrap of a sample's bar shapes (benchmarks, tests)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from tai_events.market import BarClosed, Timeframe


def bootstrap_frame(
    sample: pd.DataFrame,
    count: int,
    *,
    seed: int,
    start: datetime = datetime(2000, 1, 3, tzinfo=UTC),
    frequency: str = "h",
) -> pd.DataFrame:
    """Return ``count`` OHLCV bars built by resampling the sample's bars with replacement.

    Each drawn bar keeps its shape relative to the previous close (gap to the open, high, low
    and close ratios), chained from the sample's first close, so the series has the sample's
    return distribution and valid OHLC on every bar.
    """
    if count < 1:
        raise ValueError("count must be positive")
    previous_close = sample["Close"].shift(1).to_numpy()[1:]
    ratios = np.column_stack(
        [
            sample[column].to_numpy()[1:] / previous_close
            for column in ("Open", "High", "Low", "Close")
        ]
    )
    volumes = sample["Volume"].to_numpy()[1:]
    generator = np.random.default_rng(seed)
    drawn = generator.integers(0, ratios.shape[0], size=count)
    closes = float(sample["Close"].iloc[0]) * np.cumprod(ratios[drawn, 3])
    references = np.concatenate(([float(sample["Close"].iloc[0])], closes[:-1]))
    opens = references * ratios[drawn, 0]
    highs = np.maximum.reduce([references * ratios[drawn, 1], opens, closes])
    lows = np.minimum.reduce([references * ratios[drawn, 2], opens, closes])
    index = pd.date_range(start, periods=count, freq=frequency)
    return pd.DataFrame(
        {"Open": opens, "High": highs, "Low": lows, "Close": closes, "Volume": volumes[drawn]},
        index=index,
    )


def bars_from_frame(
    frame: pd.DataFrame, *, symbol: str, timeframe: Timeframe, source: str = "synthetic"
) -> list[BarClosed]:
    """Return one validated BarClosed per row (index = bar open times, UTC if naive)."""
    times = pd.DatetimeIndex(frame.index)
    times = times.tz_localize(UTC) if times.tz is None else times.tz_convert(UTC)
    duration = timeframe.duration
    rows = zip(
        times.to_pydatetime(),
        frame["Open"].tolist(),
        frame["High"].tolist(),
        frame["Low"].tolist(),
        frame["Close"].tolist(),
        frame["Volume"].tolist(),
        strict=True,
    )
    return [
        BarClosed(
            symbol=symbol,
            timeframe=timeframe,
            opened_at=opened_at,
            closed_at=opened_at + duration,
            open=open_,
            high=high,
            low=low,
            close=close,
            volume=volume,
            source=source,
        )
        for opened_at, open_, high, low, close, volume in rows
    ]


def hourly_cycle_frame(
    count: int,
    *,
    seed: int,
    start: datetime = datetime(2000, 1, 3, tzinfo=UTC),
    direction: float = 1.0,
    step: float = 0.0005,
    noise: float = 0.0003,
    first_close: float = 1.1,
) -> pd.DataFrame:
    """Return hourly bars that rise in the first half of each UTC day and fall in the second.

    ``direction`` -1 inverts the cycle (a regime change a model trained on the other one gets
    wrong); ``noise`` sets the random part (and the bars' ranges). A learnable market for the
    ML tests: the hour of day, a model feature, tells the next hours' direction.
    """
    if count < 1:
        raise ValueError("count must be positive")
    index = pd.date_range(start, periods=count, freq="h")
    generator = np.random.default_rng(seed)
    sign = np.where(index.hour < 12, 1.0, -1.0) * direction
    returns = sign * step + generator.normal(0.0, noise, count)
    closes = first_close * np.cumprod(1.0 + returns)
    opens = np.concatenate(([first_close], closes[:-1]))
    wicks = np.abs(generator.normal(0.0, noise, (2, count)))
    highs = np.maximum(opens, closes) * (1.0 + wicks[0])
    lows = np.minimum(opens, closes) * (1.0 - wicks[1])
    volumes = generator.integers(500, 1500, count).astype(np.float64)
    return pd.DataFrame(
        {"Open": opens, "High": highs, "Low": lows, "Close": closes, "Volume": volumes},
        index=index,
    )
