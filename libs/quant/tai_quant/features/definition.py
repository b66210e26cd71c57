"""The one definition of the feature set that both implementations compute.

``FeatureSetDefinition`` fixes every parameter (horizons, periods) and the ordered list of
feature names. The batch implementation (:mod:`tai_quant.features.batch`, vectorised over a
DataFrame, for training) and the incremental one (:mod:`tai_quant.features.incremental`,
O(1) per bar, for live inference) both iterate over this definition, and a test proves they
agree to 1e-9 on every feature and every bar after warm-up. The ``version`` is a hash of the
definition, so a model trained on one definition is never served features of another.

Conventions (all features are dimensionless so that a model transfers across price levels):

* ``log_return_<h>``: ``ln(close[t] / close[t-h])``.
* ``volatility_<n>``: sample std of the last n one-bar log returns.
* ``rsi_<n>``: Wilder RSI scaled to 0..1.
* ``macd_line`` / ``macd_signal`` / ``macd_histogram``: MACD(12, 26, 9) divided by the close;
  ``*_slope``: their one-bar change.
* ``bollinger_percent_b`` (0.5 when the band has no width) and ``bollinger_width``.
* ``atr_ratio``: ATR(14) / close.
* ``adx`` / ``plus_di`` / ``minus_di``: Wilder ADX(14) system scaled to 0..1.
* ``stochastic_k`` / ``stochastic_d``: stochastic(14, 3) scaled to 0..1.
* ``cci``: CCI(20) / 100.  ``williams_r``: Williams %R(14) scaled to -1..0.
* ``obv_zscore``: z-score of on-balance volume over ``obv_zscore_period`` bars.
* ``sma_distance_<n>`` / ``ema_distance_<n>``: ``close / average - 1``.
* ``sma_slope_<n>`` / ``ema_slope_<n>``: ``average[t] / average[t-1] - 1``.
* ``candle_body`` / ``candle_upper_shadow`` / ``candle_lower_shadow``: parts of the bar's
  range (0 when high == low); ``candle_range``: ``(high - low) / close``.
* ``close_zscore_<n>`` and ``volume_zscore_<n>``: rolling z-scores.
* ``volume_ratio_<n>``: volume / SMA(volume, n) (1 when the average volume is 0).
* ``hour_sin`` / ``hour_cos`` / ``weekday_sin`` / ``weekday_cos``: cyclical time of the bar's
  opening (UTC).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
"""Columns the batch implementation reads (a DatetimeIndex of bar opening times in UTC)."""


@dataclass(frozen=True)
class FeatureSetDefinition:
    """Parameters of the feature set; the defaults are the production feature set."""

    return_horizons: tuple[int, ...] = (1, 2, 4, 8, 12, 24)
    volatility_periods: tuple[int, ...] = (12, 24, 48)
    rsi_periods: tuple[int, ...] = (7, 14, 21)
    macd_periods: tuple[int, int, int] = (12, 26, 9)
    bollinger_period: int = 20
    bollinger_std: float = 2.0
    atr_period: int = 14
    adx_period: int = 14
    stochastic_periods: tuple[int, int] = (14, 3)
    cci_period: int = 20
    williams_period: int = 14
    obv_zscore_period: int = 50
    sma_distance_periods: tuple[int, ...] = (10, 20, 50, 100)
    ema_distance_periods: tuple[int, ...] = (10, 50)
    sma_slope_periods: tuple[int, ...] = (20, 50)
    ema_slope_periods: tuple[int, ...] = (20,)
    close_zscore_periods: tuple[int, ...] = (20, 50)
    volume_zscore_periods: tuple[int, ...] = (20,)
    volume_ratio_periods: tuple[int, ...] = (20, 50)
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self._names()))

    def _names(self) -> list[str]:
        names = [f"log_return_{horizon}" for horizon in self.return_horizons]
        names += [f"volatility_{period}" for period in self.volatility_periods]
        names += [f"rsi_{period}" for period in self.rsi_periods]
        names += ["macd_line", "macd_signal", "macd_histogram"]
        names += ["macd_line_slope", "macd_signal_slope", "macd_histogram_slope"]
        names += ["bollinger_percent_b", "bollinger_width", "atr_ratio"]
        names += ["adx", "plus_di", "minus_di", "stochastic_k", "stochastic_d"]
        names += ["cci", "williams_r", "obv_zscore"]
        names += [f"sma_distance_{period}" for period in self.sma_distance_periods]
        names += [f"ema_distance_{period}" for period in self.ema_distance_periods]
        names += [f"sma_slope_{period}" for period in self.sma_slope_periods]
        names += [f"ema_slope_{period}" for period in self.ema_slope_periods]
        names += ["candle_body", "candle_upper_shadow", "candle_lower_shadow", "candle_range"]
        names += [f"close_zscore_{period}" for period in self.close_zscore_periods]
        names += [f"volume_zscore_{period}" for period in self.volume_zscore_periods]
        names += [f"volume_ratio_{period}" for period in self.volume_ratio_periods]
        names += ["hour_sin", "hour_cos", "weekday_sin", "weekday_cos"]
        return names

    @property
    def version(self) -> str:
        """Return a stable id of this definition (``fs1-`` and a hash of the parameters)."""
        parameters = {key: value for key, value in asdict(self).items() if key != "names"}
        canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
        return "fs1-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]

    @property
    def warmup_period(self) -> int:
        """Return the bars needed before every feature has a value (first at this index)."""
        _, slow, signal = self.macd_periods
        k_period, d_period = self.stochastic_periods
        needs = [
            max(self.return_horizons) + 1,
            max(self.volatility_periods) + 1,
            max(self.rsi_periods) + 1,
            slow + signal - 1 + 1,  # the slopes need one more bar than the signal line
            self.bollinger_period,
            self.atr_period,
            2 * self.adx_period,
            k_period + d_period - 1,
            self.cci_period,
            self.williams_period,
            self.obv_zscore_period,
            max(self.sma_distance_periods),
            max(self.ema_distance_periods),
            max(self.sma_slope_periods) + 1,
            max(self.ema_slope_periods) + 1,
            max(self.close_zscore_periods),
            max(self.volume_zscore_periods),
            max(self.volume_ratio_periods),
        ]
        return max(needs)


DEFAULT_FEATURES = FeatureSetDefinition()
"""The production feature set."""
