"""Performance metrics of an equity curve and a list of closed trades.

Conventions (the same as empyrical / quantstats unless stated):

* Returns are simple per-bar returns of the equity curve, ``r[t] = E[t] / E[t-1] - 1``.
* ``periods_per_year`` is given, or inferred from the index by :func:`infer_periods_per_year`.
* CAGR = ``(E_end / E_start) ** (periods_per_year / number_of_returns) - 1``: the elapsed time
  is counted in bars, consistent with the annualisation of every other ratio.
* Annualised volatility = sample std (ddof=1) of returns times ``sqrt(periods_per_year)``.
* Sharpe = mean(r - rf) / std(r - rf, ddof=1) * sqrt(periods_per_year), where the annual
  risk-free rate is turned into a per-bar rate ``rf = (1 + rate) ** (1 / periods_per_year) - 1``.
* Sortino = mean(r - rf) * periods_per_year / downside deviation, the downside deviation being
  ``sqrt(mean(min(r - rf, 0) ** 2)) * sqrt(periods_per_year)`` over *all* bars.
* Drawdown[t] = E[t] / max(E[0..t]) - 1. Drawdowns are reported as positive percentages (a
  fall of 23.7 % is ``23.7``). The max drawdown's duration runs from the peak before the
  trough to the first bar back at that peak (or the last bar when it never recovered).
  Average drawdown = mean depth of the separate drawdown episodes.
* Calmar = CAGR / max drawdown (both as fractions).
* Ratios that are undefined (zero volatility, no drawdown, no trades, no losing trade) are None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400.0
# Intraday bars of a 5-day market (FX) are assumed to run around the clock on 52 * 5 days.
WEEKDAYS_PER_YEAR = 260
# Daily bars of a 5-day market use the exchange convention shared by empyrical and quantstats.
TRADING_DAYS_PER_YEAR = 252
CALENDAR_DAYS_PER_YEAR = 365
# A 7-day market has 2/7 (28.6 %) of its bars at weekends; a 5-day market that opens on
# Sunday evenings has at most 1/6 (16.7 %) of its daily bars there.
SEVEN_DAY_WEEKEND_SHARE = 0.2
# Median spacings (in days) recognised as weekly, monthly, quarterly and yearly data.
_COARSE_FREQUENCIES: tuple[tuple[float, float, float], ...] = (
    (6.0, 8.0, 52.0),
    (27.0, 32.0, 12.0),
    (88.0, 93.0, 4.0),
    (360.0, 367.0, 1.0),
)


def infer_periods_per_year(index: pd.Index) -> float:
    """Infer how many bars make a year from a DatetimeIndex.

    The median spacing Δ picks the frequency; the share of bars that fall on Saturday or Sunday
    picks the calendar (7-day when at least 20 %, 5-day otherwise):

    * intraday (Δ < 20 h): ``(1 day / Δ) * days``, days = 365 (7-day) or 260 = 52 * 5 (5-day,
      FX-style around-the-clock weekdays): hourly FX gives 24 * 260 = 6240. For a market with
      sessions (e.g. equities 6.5 h a day) pass ``periods_per_year`` explicitly instead.
    * daily (20 h <= Δ < 6 days): 365 (7-day) or 252 trading days (5-day).
    * weekly / monthly / quarterly / yearly: 52 / 12 / 4 / 1; other spacings: 365.25 days / Δ.
    """
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError("periods_per_year can only be inferred from a DatetimeIndex")
    if len(index) < 2:
        raise ValueError("at least two timestamps are needed to infer periods_per_year")
    # Absolute (UTC) instants as datetime64: numpy differences them natively, where a
    # tz-aware index would go through one Timestamp object per bar.
    instants = (index.tz_convert(None) if index.tz is not None else index).to_numpy()
    spacing_seconds = np.diff(instants).astype("timedelta64[ns]").astype(np.float64) / 1e9
    median_seconds = float(np.median(spacing_seconds))
    if median_seconds <= 0.0:
        raise ValueError("the index must be increasing")
    weekend_share = float(np.mean(index.day_of_week >= 5))
    seven_day = weekend_share >= SEVEN_DAY_WEEKEND_SHARE
    median_days = median_seconds / SECONDS_PER_DAY
    if median_days < 20.0 / 24.0:
        days = CALENDAR_DAYS_PER_YEAR if seven_day else WEEKDAYS_PER_YEAR
        return SECONDS_PER_DAY / median_seconds * days
    if median_days < 6.0:
        return float(CALENDAR_DAYS_PER_YEAR if seven_day else TRADING_DAYS_PER_YEAR)
    for low, high, periods in _COARSE_FREQUENCIES:
        if low <= median_days <= high:
            return periods
    return 365.25 / median_days


def _require_equity(equity: pd.Series) -> pd.Series:
    if not isinstance(equity, pd.Series):
        raise TypeError("equity must be a pandas Series")
    if len(equity) < 2:
        raise ValueError("an equity curve needs at least two points")
    values = equity.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values <= 0.0):
        raise ValueError("equity must be finite and positive")
    return equity.astype(np.float64)


def _require_periods(periods_per_year: float) -> float:
    if not math.isfinite(periods_per_year) or periods_per_year <= 0.0:
        raise ValueError("periods_per_year must be positive")
    return float(periods_per_year)


def simple_returns(equity: pd.Series) -> pd.Series:
    """Return per-bar simple returns of an equity curve (one fewer point)."""
    curve = _require_equity(equity)
    return (curve / curve.shift(1) - 1.0).iloc[1:]


def total_return_pct(equity: pd.Series) -> float:
    """Return the total return of the curve in percent."""
    curve = _require_equity(equity)
    return (float(curve.iloc[-1]) / float(curve.iloc[0]) - 1.0) * 100.0


def cagr(equity: pd.Series, periods_per_year: float) -> float:
    """Return the compound annual growth rate as a fraction (time counted in bars)."""
    curve = _require_equity(equity)
    years = (len(curve) - 1) / _require_periods(periods_per_year)
    growth = float(curve.iloc[-1]) / float(curve.iloc[0])
    return float(growth ** (1.0 / years) - 1.0)


def annualised_volatility(returns: pd.Series, periods_per_year: float) -> float:
    """Return the annualised sample standard deviation of per-bar returns."""
    values = returns.to_numpy(dtype=np.float64)
    if values.shape[0] < 2:
        return math.nan
    return float(np.std(values, ddof=1) * math.sqrt(_require_periods(periods_per_year)))


def per_period_rate(annual_rate: float, periods_per_year: float) -> float:
    """Return the per-bar rate compounding to ``annual_rate`` over a year."""
    return float((1.0 + annual_rate) ** (1.0 / _require_periods(periods_per_year)) - 1.0)


def sharpe_ratio(
    returns: pd.Series, periods_per_year: float, risk_free_rate: float = 0.0
) -> float | None:
    """Return the annualised Sharpe ratio (None when returns have no spread)."""
    excess = returns.to_numpy(dtype=np.float64) - per_period_rate(risk_free_rate, periods_per_year)
    if excess.shape[0] < 2:
        return None
    deviation = float(np.std(excess, ddof=1))
    if deviation == 0.0:
        return None
    return float(np.mean(excess) / deviation * math.sqrt(periods_per_year))


def sortino_ratio(
    returns: pd.Series, periods_per_year: float, risk_free_rate: float = 0.0
) -> float | None:
    """Return the annualised Sortino ratio (None without any return below the target)."""
    excess = returns.to_numpy(dtype=np.float64) - per_period_rate(risk_free_rate, periods_per_year)
    if excess.shape[0] == 0:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    if downside == 0.0:
        return None
    return float(np.mean(excess) / downside * math.sqrt(periods_per_year))


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Return the drawdown of every bar as a fraction <= 0 (``E / running max - 1``)."""
    curve = _require_equity(equity)
    return (curve / curve.cummax() - 1.0).rename("drawdown")


@dataclass(frozen=True, slots=True)
class DrawdownStatistics:
    """Depth and duration of the drawdowns of an equity curve."""

    max_drawdown_pct: float
    max_drawdown_duration_bars: int
    max_drawdown_duration_days: float
    average_drawdown_pct: float
    drawdown_count: int


def drawdown_statistics(equity: pd.Series) -> DrawdownStatistics:
    """Return the max drawdown (positive %), its duration and the average episode depth."""
    drawdown = drawdown_series(equity).to_numpy(dtype=np.float64)
    underwater = drawdown < 0.0
    if not underwater.any():
        return DrawdownStatistics(0.0, 0, 0.0, 0.0, 0)
    # Episodes are maximal runs of underwater bars; each starts right after a peak bar.
    edges = np.diff(np.concatenate(([0], underwater.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)  # first bar back at the peak (may be len: never)
    # The minimum from each episode's start to the next one's: the bars in between are back
    # at a peak (0.0), so each episode's own minimum, without a Python loop over episodes.
    depths = np.minimum.reduceat(drawdown, starts)
    deepest = int(np.argmin(depths))
    peak_position = int(starts[deepest]) - 1
    end_position = min(int(stops[deepest]), len(drawdown) - 1)
    duration_days = _elapsed_days(equity.index, peak_position, end_position)
    return DrawdownStatistics(
        max_drawdown_pct=float(-depths[deepest] * 100.0),
        max_drawdown_duration_bars=end_position - peak_position,
        max_drawdown_duration_days=duration_days,
        average_drawdown_pct=float(-depths.mean() * 100.0),
        drawdown_count=int(depths.shape[0]),
    )


def _elapsed_days(index: pd.Index, start: int, end: int) -> float:
    if isinstance(index, pd.DatetimeIndex):
        return float((index[end] - index[start]).total_seconds() / SECONDS_PER_DAY)
    return math.nan


def calmar_ratio(equity: pd.Series, periods_per_year: float) -> float | None:
    """Return CAGR / max drawdown (None when the curve never drew down)."""
    depth = drawdown_statistics(equity).max_drawdown_pct / 100.0
    if depth == 0.0:
        return None
    return cagr(equity, periods_per_year) / depth


@dataclass(frozen=True, slots=True)
class Trade:
    """A closed trade: when it was open, its net P&L and its return on the position (%)."""

    entry_time: datetime
    exit_time: datetime
    pnl: float
    return_pct: float

    def __post_init__(self) -> None:
        if self.exit_time < self.entry_time:
            raise ValueError("a trade cannot exit before it enters")
        if not (math.isfinite(self.pnl) and math.isfinite(self.return_pct)):
            raise ValueError("trade pnl and return_pct must be finite")


@dataclass(frozen=True, slots=True)
class TradeStatistics:
    """Aggregates over closed trades; None where undefined (no trades, no losses)."""

    number_of_trades: int
    win_rate_pct: float | None
    profit_factor: float | None
    expectancy: float | None
    average_trade_pct: float | None
    best_trade_pct: float | None
    worst_trade_pct: float | None


def trade_statistics(trades: Sequence[Trade]) -> TradeStatistics:
    """Return win rate, profit factor, expectancy and average/best/worst trade.

    A win is a trade with pnl > 0. Profit factor = gross profit / gross loss. Expectancy is the
    mean pnl per trade (= win rate * average win - loss rate * average loss).
    """
    if not trades:
        return TradeStatistics(0, None, None, None, None, None, None)
    pnl = np.array([trade.pnl for trade in trades], dtype=np.float64)
    returns = np.array([trade.return_pct for trade in trades], dtype=np.float64)
    gross_profit = float(pnl[pnl > 0.0].sum())
    gross_loss = float(-pnl[pnl < 0.0].sum())
    return TradeStatistics(
        number_of_trades=len(trades),
        win_rate_pct=float(np.mean(pnl > 0.0) * 100.0),
        profit_factor=gross_profit / gross_loss if gross_loss > 0.0 else None,
        expectancy=float(pnl.mean()),
        average_trade_pct=float(returns.mean()),
        best_trade_pct=float(returns.max()),
        worst_trade_pct=float(returns.min()),
    )


def exposure_pct(trades: Sequence[Trade], start: datetime, end: datetime) -> float:
    """Return the share of [start, end] during which at least one trade was open, in %."""
    start_time, end_time = pd.Timestamp(start), pd.Timestamp(end)
    total = (end_time - start_time).total_seconds()
    if total <= 0.0:
        raise ValueError("end must be after start")
    intervals = sorted(
        (
            max(pd.Timestamp(trade.entry_time), start_time),
            min(pd.Timestamp(trade.exit_time), end_time),
        )
        for trade in trades
    )
    covered = 0.0
    current_start: pd.Timestamp | None = None
    current_end: pd.Timestamp | None = None
    for interval_start, interval_end in intervals:
        if interval_end <= interval_start:
            continue
        if current_end is None or current_start is None or interval_start > current_end:
            if current_end is not None and current_start is not None:
                covered += (current_end - current_start).total_seconds()
            current_start, current_end = interval_start, interval_end
        else:
            current_end = max(current_end, interval_end)
    if current_end is not None and current_start is not None:
        covered += (current_end - current_start).total_seconds()
    return covered / total * 100.0


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    """Every headline metric of a run; see the module docstring for the conventions."""

    start: datetime
    end: datetime
    periods_per_year: float
    initial_equity: float
    final_equity: float
    total_return_pct: float
    cagr_pct: float
    annualised_volatility_pct: float
    sharpe_ratio: float | None
    sortino_ratio: float | None
    calmar_ratio: float | None
    max_drawdown_pct: float
    max_drawdown_duration_bars: int
    max_drawdown_duration_days: float
    average_drawdown_pct: float
    number_of_trades: int
    win_rate_pct: float | None
    profit_factor: float | None
    expectancy: float | None
    exposure_pct: float | None
    average_trade_pct: float | None
    best_trade_pct: float | None
    worst_trade_pct: float | None

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready dict (timestamps as ISO 8601 strings)."""
        data = asdict(self)
        data["start"] = self.start.isoformat()
        data["end"] = self.end.isoformat()
        return data


def performance_report(
    equity: pd.Series,
    trades: Sequence[Trade] = (),
    *,
    periods_per_year: float | None = None,
    risk_free_rate: float = 0.0,
) -> PerformanceReport:
    """Compute a :class:`PerformanceReport` from an equity curve indexed by time and its trades.

    ``periods_per_year`` is inferred from the index when not given. Exposure is None when no
    trades are given (it cannot be told from the curve alone).
    """
    curve = _require_equity(equity)
    if not isinstance(curve.index, pd.DatetimeIndex):
        raise TypeError("equity must be indexed by a DatetimeIndex")
    periods = (
        infer_periods_per_year(curve.index)
        if periods_per_year is None
        else _require_periods(periods_per_year)
    )
    returns = simple_returns(curve)
    drawdowns = drawdown_statistics(curve)
    growth = cagr(curve, periods)
    statistics = trade_statistics(trades)
    start = curve.index[0].to_pydatetime()
    end = curve.index[-1].to_pydatetime()
    return PerformanceReport(
        start=start,
        end=end,
        periods_per_year=periods,
        initial_equity=float(curve.iloc[0]),
        final_equity=float(curve.iloc[-1]),
        total_return_pct=total_return_pct(curve),
        cagr_pct=growth * 100.0,
        annualised_volatility_pct=annualised_volatility(returns, periods) * 100.0,
        sharpe_ratio=sharpe_ratio(returns, periods, risk_free_rate),
        sortino_ratio=sortino_ratio(returns, periods, risk_free_rate),
        calmar_ratio=(
            growth / (drawdowns.max_drawdown_pct / 100.0) if drawdowns.max_drawdown_pct else None
        ),
        max_drawdown_pct=drawdowns.max_drawdown_pct,
        max_drawdown_duration_bars=drawdowns.max_drawdown_duration_bars,
        max_drawdown_duration_days=drawdowns.max_drawdown_duration_days,
        average_drawdown_pct=drawdowns.average_drawdown_pct,
        number_of_trades=statistics.number_of_trades,
        win_rate_pct=statistics.win_rate_pct,
        profit_factor=statistics.profit_factor,
        expectancy=statistics.expectancy,
        exposure_pct=exposure_pct(trades, start, end) if trades else None,
        average_trade_pct=statistics.average_trade_pct,
        best_trade_pct=statistics.best_trade_pct,
        worst_trade_pct=statistics.worst_trade_pct,
    )
