"""Technical indicators, each as a vectorised batch function and an O(1) streaming class.

Every batch function takes pandas Series and returns a Series (or a DataFrame for indicators
with several outputs) aligned on the input index, NaN during warm-up. Every streaming class
has ``update(...) -> float | None`` (None until warmed up), ``value``, ``ready`` and
``warmup_period``; multi-output classes add a ``values`` property with all outputs. Batch and
streaming results agree to floating-point rounding on every bar after warm-up. Each module's
docstring states its formula conventions.
"""

from tai_quant.indicators._core import StreamingIndicator
from tai_quant.indicators.momentum import (
    CommodityChannelIndex,
    RelativeStrengthIndex,
    StochasticOscillator,
    StochasticValues,
    WilliamsR,
    cci,
    rsi,
    stochastic,
    williams_r,
)
from tai_quant.indicators.statistics import RollingZScore, rolling_zscore
from tai_quant.indicators.trend import (
    AdxValues,
    AverageDirectionalIndex,
    ExponentialMovingAverage,
    MacdValues,
    MovingAverageConvergenceDivergence,
    SimpleMovingAverage,
    adx,
    ema,
    macd,
    sma,
)
from tai_quant.indicators.volatility import (
    AverageTrueRange,
    BollingerBands,
    BollingerValues,
    RollingVolatility,
    TrueRange,
    atr,
    bollinger_bands,
    rolling_volatility,
    true_range,
)
from tai_quant.indicators.volume import OnBalanceVolume, obv

__all__ = [
    "AdxValues",
    "AverageDirectionalIndex",
    "AverageTrueRange",
    "BollingerBands",
    "BollingerValues",
    "CommodityChannelIndex",
    "ExponentialMovingAverage",
    "MacdValues",
    "MovingAverageConvergenceDivergence",
    "OnBalanceVolume",
    "RelativeStrengthIndex",
    "RollingVolatility",
    "RollingZScore",
    "SimpleMovingAverage",
    "StochasticOscillator",
    "StochasticValues",
    "StreamingIndicator",
    "TrueRange",
    "WilliamsR",
    "adx",
    "atr",
    "bollinger_bands",
    "cci",
    "ema",
    "macd",
    "obv",
    "rolling_volatility",
    "rolling_zscore",
    "rsi",
    "sma",
    "stochastic",
    "true_range",
    "williams_r",
]
