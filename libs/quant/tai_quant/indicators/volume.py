"""Volume indicators: on-balance volume.

Convention: OBV starts at 0 on the first bar; each later bar adds its volume when the close
rose, subtracts it when the close fell and leaves OBV unchanged when the close is equal.
(``ta`` starts at the first bar's volume and counts an unchanged close as a rise.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tai_quant.indicators._core import (
    StreamingIndicator,
    as_values,
    require_finite,
    require_same_index,
)


def obv(close: pd.Series, volume: pd.Series) -> pd.Series:
    """Return on-balance volume (0 on the first bar)."""
    index = require_same_index(close, volume)
    closes, volumes = as_values(close, "close"), as_values(volume, "volume")
    signed = np.zeros(closes.shape[0])
    if closes.shape[0] > 1:
        signed[1:] = np.sign(np.diff(closes)) * volumes[1:]
    return pd.Series(np.cumsum(signed), index=index, name="obv")


class OnBalanceVolume(StreamingIndicator):
    """Streaming on-balance volume; ready from the first bar."""

    __slots__ = ("_previous_close",)

    def __init__(self) -> None:
        super().__init__(1)
        self._previous_close: float | None = None

    def update(self, close: float, volume: float) -> float:
        """Add one bar and return the OBV."""
        price = require_finite(close, "close")
        quantity = require_finite(volume, "volume")
        previous = self._previous_close
        self._previous_close = price
        total = self._value if self._value is not None else 0.0
        if previous is not None:
            if price > previous:
                total += quantity
            elif price < previous:
                total -= quantity
        self._value = total
        return total
