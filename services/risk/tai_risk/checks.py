"""Pre-trade rules: one function per rule, each returning a named verdict.

Rules that bound *new* exposure (stale data, sizing, risk per trade, leverage, margin,
correlated groups, VaR/CVaR) pass any order that shrinks the projected position: closing risk
is always allowed unless trading is HALTED.

Orders without a stop loss are measured with an ATR stop (``atr_stop_multiple`` x ATR of the
symbol); when risk has no ATR yet, risk per trade cannot be measured and passes (the notional,
leverage, margin and VaR limits still bound the order), and the verdict says so. Orders without a
win probability are not Kelly-sized: their quantity is bounded by the other limits only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tai_events.base import ScalarValue
from tai_events.orders import OrderRequested, Side, SizingConstraint
from tai_events.risk import TradingState
from tai_quant.risk import (
    RiskEstimate,
    RiskMethod,
    correlation_groups,
    historical_risk,
    kelly_fraction,
    parametric_risk,
    portfolio_risk,
    position_size,
)
from tai_risk.state import PortfolioState

_EPSILON = 1e-9
_BUY = Side.BUY  # a module constant: enum attribute lookups are slow on Python 3.11


class RiskLimits(BaseModel):
    """Configurable limits; the defaults are the documented production defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position_notional_pct: float = Field(
        default=20.0, gt=0, le=1000, description="max notional per symbol, % of equity"
    )
    max_open_positions: int = Field(default=10, ge=1)
    max_price_deviation_pct: float = Field(
        default=5.0, gt=0, description="fat-finger: max distance from the last price, %"
    )
    fill_price_tolerance_pct: float = Field(
        default=2.0, gt=0, description="approved fill band around the reference price, %"
    )
    approval_ttl_seconds: float = Field(default=300.0, gt=0)
    max_risk_per_trade_pct: float = Field(
        default=2.0, gt=0, le=100, description="stop distance x size, % of equity"
    )
    strategy_styles: dict[str, str] = Field(
        default_factory=dict, description="strategy name -> style (key of style_risk_caps_pct)"
    )
    style_risk_caps_pct: dict[str, float] = Field(
        default_factory=lambda: {"scalping": 1.0, "intraday": 2.0, "swing": 3.0},
        description="risk per trade cap per strategy style, % of equity",
    )
    atr_stop_multiple: float = Field(
        default=2.0, gt=0, description="stop distance assumed for an order without a stop, x ATR"
    )
    max_gross_leverage: float = Field(default=10.0, gt=0, description="sum of |notional| / equity")
    max_margin_utilisation_pct: float = Field(
        default=50.0, gt=0, le=100, description="margin used / equity, %"
    )
    default_margin_rate: float = Field(
        default=1.0 / 30.0, gt=0, le=1, description="margin per unit of notional (30:1)"
    )
    margin_rates: dict[str, float] = Field(
        default_factory=dict, description="per-symbol margin rate overrides"
    )
    max_correlated_exposure_pct: float = Field(
        default=30.0, gt=0, description="|notional| of a correlated group, % of equity"
    )
    correlation_threshold: float = Field(default=0.8, ge=0, le=1)
    return_lookback_days: float = Field(
        default=60.0, gt=0, description="returns used for correlations and VaR, days"
    )
    min_return_observations: int = Field(
        default=30, ge=3, description="fewer aligned returns than this: VaR/correlation skipped"
    )
    max_var_pct: float = Field(default=2.0, gt=0, description="1-day portfolio VaR, % of equity")
    var_confidence: float = Field(default=0.95, gt=0, lt=1)
    max_cvar_pct: float = Field(default=3.0, gt=0, description="1-day portfolio CVaR, % equity")
    cvar_confidence: float = Field(default=0.975, gt=0, lt=1)
    var_method: RiskMethod = RiskMethod.HISTORICAL
    var_horizon_days: float = Field(default=1.0, gt=0)
    monte_carlo_simulations: int = Field(default=20_000, ge=100)
    monte_carlo_seed: int = 7
    max_orders_per_minute: int = Field(default=10, ge=1, description="per strategy")
    stale_after_bars: int = Field(
        default=3, ge=1, description="no bar for this many intervals: refuse new exposure"
    )
    require_market_data: bool = Field(
        default=True, description="refuse new exposure in a symbol risk has no bar for"
    )
    quantity_increment: float = Field(
        default=1.0, gt=0, description="sized quantities are whole multiples of this"
    )
    kelly_fraction: float = Field(default=0.25, gt=0, le=1, description="fraction of Kelly")
    kelly_cap: float = Field(default=0.25, gt=0, le=1, description="cap of the Kelly bet")
    default_payoff_ratio: float = Field(
        default=1.0, gt=0, description="payoff ratio when an order has no take profit"
    )

    def risk_cap_pct(self, strategy: str, style: str | None = None) -> float:
        """Return the risk-per-trade cap of a strategy: its style's (as the request states it,
        else as configured for the strategy), else the global one."""
        chosen = style or self.strategy_styles.get(strategy)
        if chosen is not None and chosen in self.style_risk_caps_pct:
            return self.style_risk_caps_pct[chosen]
        return self.max_risk_per_trade_pct

    def published(self) -> dict[str, ScalarValue]:
        """Return every limit as a scalar (mappings as JSON text), as RiskLimitsPublished has it."""
        values: dict[str, ScalarValue] = {}
        for name, value in self.model_dump(mode="json").items():
            if isinstance(value, dict | list):
                values[name] = json.dumps(value, sort_keys=True)[:256]
            else:
                values[name] = value
        return values

    def margin_rate(self, symbol: str) -> float:
        """Return the margin rate of a symbol."""
        return self.margin_rates.get(symbol, self.default_margin_rate)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A rule's outcome: passed, or failed with a reason and the values it saw."""

    rule: str
    passed: bool
    reason: str = ""
    values: dict[str, ScalarValue] = field(default_factory=dict)


_PASSED: dict[str, Verdict] = {}
_ONE_MINUTE = timedelta(minutes=1)


def passed(rule: str) -> Verdict:
    """Return the verdict of a rule that passed without remarks (one shared instance per rule).

    Every order collects a verdict from each rule; sharing the plain passes spares a dozen
    allocations per order. Verdicts are frozen and nothing writes to their values.
    """
    verdict = _PASSED.get(rule)
    if verdict is None:
        verdict = _PASSED[rule] = Verdict(rule, True)
    return verdict


_NOT_SIZED = Verdict("sizing", True, "not sized")
"""The sizing verdict of an order without a win probability (or nothing to open)."""


def _round(value: float) -> float:
    """Keep 10 significant digits: readable in the audit log, exact enough for FX prices."""
    return float(f"{value:.10g}")


def shrinks_exposure(request: OrderRequested, portfolio: PortfolioState) -> bool:
    """Return True when the order makes the projected position strictly smaller."""
    if request.quantity is None:
        return False  # an intent to be sized opens (or adds to) a position
    current = portfolio.projected_positions.get(request.symbol, 0.0)
    change = request.quantity if request.side is _BUY else -request.quantity
    return abs(current + change) < abs(current) - _EPSILON


def _quantity(request: OrderRequested) -> float:
    """Return the request's quantity (0 for an intent risk has not sized yet)."""
    return request.quantity or 0.0


def _strategy_after(request: OrderRequested, portfolio: PortfolioState) -> float:
    """Return the strategy's own projected position in the symbol if the order were approved."""
    change = _quantity(request) if request.side is _BUY else -_quantity(request)
    return portfolio.strategy_quantity(request.strategy, request.symbol) + change


def grows_strategy_position(request: OrderRequested, portfolio: PortfolioState) -> bool:
    """Return True when the order makes its strategy's own position larger."""
    before = portfolio.strategy_quantity(request.strategy, request.symbol)
    return abs(_strategy_after(request, portfolio)) > abs(before) + _EPSILON


def _projected_notionals(request: OrderRequested, portfolio: PortfolioState) -> dict[str, float]:
    """Return signed notionals at the last prices with the candidate order included."""
    symbol = request.symbol
    positions = dict(portfolio.projected_positions)
    positions[symbol] = portfolio.after(symbol, request.side, _quantity(request))
    last_prices = portfolio.last_prices  # portfolio.mark, inlined: four rules call this per order
    return {
        name: quantity * last_prices.get(name, request.reference_price if name == symbol else 0.0)
        for name, quantity in positions.items()
        if abs(quantity) > _EPSILON
    }


def stop_distance(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> tuple[float | None, str]:
    """Return the stop distance in price points and where it came from."""
    if request.stop_loss is not None:
        distance = abs(request.reference_price - request.stop_loss)
        if distance > 0:
            return distance, "stop_loss"
    atr = portfolio.market.atr(request.symbol)
    if atr is not None and atr > 0:
        return limits.atr_stop_multiple * atr, "atr"
    return None, "unknown"


def check_trading_state(
    request: OrderRequested, portfolio: PortfolioState, state: TradingState
) -> Verdict:
    """HALTED admits nothing; REDUCING admits only orders that shrink exposure (a strategy's
    reduce-only exit counts: sizing cuts it to the position that strategy holds)."""
    if state is TradingState.HALTED:
        return Verdict("trading_state", False, "trading is HALTED", {"state": state.value})
    if (
        state is TradingState.REDUCING
        and not request.reduce_only
        and not shrinks_exposure(request, portfolio)
    ):
        return Verdict(
            "trading_state",
            False,
            "trading is REDUCING and this order does not reduce exposure",
            {
                "state": state.value,
                "position": portfolio.projected_quantity(request.symbol),
                "position_after": portfolio.after(request.symbol, request.side, _quantity(request)),
            },
        )
    return passed("trading_state")


def check_duplicate(request: OrderRequested, portfolio: PortfolioState) -> Verdict:
    """Refuse an order id that was already decided."""
    if request.order_id in portfolio.decided_order_ids:
        return Verdict(
            "duplicate_order",
            False,
            f"order id {request.order_id} was already decided",
            {"order_id": request.order_id},
        )
    return passed("duplicate_order")


def check_price_deviation(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse a reference price too far from the last market price (fat finger)."""
    last = portfolio.last_prices.get(request.symbol)
    if last is None:
        return passed("price_deviation")
    deviation_pct = abs(request.reference_price - last) / last * 100.0
    if deviation_pct > limits.max_price_deviation_pct:
        return Verdict(
            "price_deviation",
            False,
            f"price {request.reference_price} is {deviation_pct:.2f}% from the last price {last}",
            {
                "reference_price": request.reference_price,
                "last_price": last,
                "deviation_pct": _round(deviation_pct),
                "limit_pct": limits.max_price_deviation_pct,
            },
        )
    return passed("price_deviation")


def check_order_rate(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse a strategy's order beyond its rate per minute (measured in market time).

    Market time (the signal time) keeps a replay limited exactly like live trading, and the
    decisions deterministic.
    """
    start = request.signal_time - _ONE_MINUTE
    count = portfolio.requests_within(request.strategy, start)
    if count >= limits.max_orders_per_minute:
        return Verdict(
            "order_rate",
            False,
            f"strategy {request.strategy} sent {count} orders in the last minute; "
            f"the limit is {limits.max_orders_per_minute}",
            {"orders_last_minute": count, "limit": limits.max_orders_per_minute},
        )
    return passed("order_rate")


def check_market_data(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse new exposure on stale market data (no bar for N intervals).

    Measured in market time, on risk's own ordered bar stream: a symbol is stale when its
    last bar is N intervals older than the newest bar of any symbol. The order's signal time
    is deliberately not compared with risk's bars: orders and bars travel on different queues,
    so in a replay (faster than real time) either may overtake the other and the decision
    would depend on timing. A feed that stops for every symbol stops the strategies too.
    """
    if shrinks_exposure(request, portfolio):
        return passed("stale_market_data")
    market = portfolio.market.symbols.get(request.symbol)
    if market is None:
        if limits.require_market_data:
            return Verdict(
                "stale_market_data",
                False,
                f"risk has no market data for {request.symbol}",
                {"symbol": request.symbol},
            )
        return passed("stale_market_data")
    allowed = market.interval * limits.stale_after_bars
    market_time = portfolio.market.latest_time() or market.last_bar_at
    values: dict[str, ScalarValue] = {
        "last_bar_at": market.last_bar_at.isoformat(),
        "market_time": market_time.isoformat(),
        "signal_time": request.signal_time.isoformat(),
        "limit_seconds": allowed.total_seconds(),
    }
    silence = market_time - market.last_bar_at
    if silence > allowed:
        return Verdict(
            "stale_market_data",
            False,
            f"no {request.symbol} bar for {silence} while the market moved on; the limit is "
            f"{limits.stale_after_bars} bars of {market.interval}",
            values | {"silence_seconds": silence.total_seconds()},
        )
    return passed("stale_market_data")


@dataclass(frozen=True, slots=True)
class Sizing:
    """The approved quantity, the constraint that set it, and the verdict explaining it."""

    quantity: float
    verdict: Verdict
    sized_by: str = SizingConstraint.REQUESTED.value


def _floor_to_increment(quantity: float, increment: float) -> float:
    """Round a quantity down to a whole number of increments (tolerating float noise: a stop
    1.1 - 1.095 away is 0.00500000000000012, and 2,500 over it a hair under 500,000)."""
    steps = quantity / increment
    return math.floor(steps * (1.0 + 1e-12) + 1e-9) * increment


def size_order(request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits) -> Sizing:
    """Turn a request into a quantity: risk budget, fractional Kelly, or what was asked.

    * A reduce-only order closes at most what its strategy holds on the other side.
    * An order without quantity (an intent) is sized so the whole resulting position loses the
      strategy's risk budget at the stop: risk fraction = min(its ``risk_budget_pct``, its
      style's cap, fractional Kelly when it states a win probability); units = equity x
      fraction / stop distance, rounded down to ``quantity_increment``.
    * An order with a quantity keeps it, except that a win probability caps its exposure-adding
      part at the Kelly units (the part that closes the current position is never cut).

    The exposure limits then shrink the quantity further where they bind (see RiskEngine).
    """
    if request.reduce_only:
        return _size_reduce_only(request, portfolio)
    if request.quantity is None:
        return _size_from_budget(request, portfolio, limits)
    return _size_requested(request, request.quantity, portfolio, limits)


def _size_requested(
    request: OrderRequested, wanted: float, portfolio: PortfolioState, limits: RiskLimits
) -> Sizing:
    """Keep a requested quantity; cap its opening part at Kelly when it has a win probability."""
    before = portfolio.projected_quantity(request.symbol)
    closing = min(wanted, abs(before)) if before * request.side.sign < 0 else 0.0
    opening = wanted - closing
    if request.win_probability is None or opening <= _EPSILON:
        return Sizing(wanted, _NOT_SIZED)
    distance, source = stop_distance(request, portfolio, limits)
    if distance is None:
        return Sizing(wanted, Verdict("sizing", True, "no stop distance: not sized"))
    kelly, values = _kelly(request, request.win_probability, distance, source, limits)
    if kelly <= 0.0:
        return Sizing(0.0, _no_edge(request, values))
    risk_fraction = min(kelly, limits.risk_cap_pct(request.strategy, request.style) / 100.0)
    units = position_size(max(portfolio.equity, 0.0), risk_fraction, distance)
    # the budget covers the whole position after the order: a same-side order adds to the
    # current position, a reversal's opening part is the whole new position
    held = abs(before) if closing == 0 else 0.0
    allowed_opening = max(units - held, 0.0)
    approved = closing + min(opening, allowed_opening)
    values.update({"risk_fraction": _round(risk_fraction), "kelly_units": _round(units)})
    if approved <= _EPSILON:
        return Sizing(
            0.0,
            Verdict(
                "sizing",
                False,
                f"the position already uses the Kelly budget of {units:.2f} units",
                values,
            ),
        )
    sized_by = (
        SizingConstraint.KELLY.value
        if approved < wanted - _EPSILON
        else SizingConstraint.REQUESTED.value
    )
    return Sizing(approved, Verdict("sizing", True, "sized", values), sized_by)


def _kelly(
    request: OrderRequested,
    win_probability: float,
    distance: float,
    source: str,
    limits: RiskLimits,
) -> tuple[float, dict[str, ScalarValue]]:
    """Return the fractional Kelly bet of a win probability at the request's payoff."""
    payoff = limits.default_payoff_ratio
    if request.take_profit is not None:
        target = abs(request.take_profit - request.reference_price)
        payoff = target / distance if target > 0 else payoff
    kelly = kelly_fraction(
        win_probability, payoff, fraction=limits.kelly_fraction, cap=limits.kelly_cap
    )
    values: dict[str, ScalarValue] = {
        "win_probability": win_probability,
        "payoff_ratio": _round(payoff),
        "kelly_fraction": _round(kelly),
        "stop_distance": _round(distance),
        "stop_source": source,
    }
    return kelly, values


def _no_edge(request: OrderRequested, values: dict[str, ScalarValue]) -> Verdict:
    return Verdict(
        "sizing",
        False,
        f"no edge: win probability {request.win_probability} at payoff "
        f"{values['payoff_ratio']} gives a zero Kelly bet",
        values,
    )


def _size_reduce_only(request: OrderRequested, portfolio: PortfolioState) -> Sizing:
    """Cut a reduce-only order to the position its strategy holds on the other side."""
    if request.quantity is None:  # the event's validator already refuses this
        raise ValueError("a reduce_only order states the quantity it closes")
    held = portfolio.strategy_quantity(request.strategy, request.symbol)
    values: dict[str, ScalarValue] = {"strategy_position": _round(held)}
    if held * request.side.sign >= 0 or abs(held) <= _EPSILON:
        return Sizing(
            0.0,
            Verdict(
                "reduce_only",
                False,
                f"reduce-only {request.side.value} but strategy {request.strategy} holds "
                f"{held:g} {request.symbol}: nothing to reduce",
                values,
            ),
        )
    if request.quantity <= abs(held) + _EPSILON:
        return Sizing(request.quantity, Verdict("sizing", True, "reduce-only", values))
    return Sizing(
        abs(held),
        Verdict("sizing", True, "reduce-only: cut to the position held", values),
        SizingConstraint.POSITION_HELD.value,
    )


def _size_from_budget(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Sizing:
    """Size an intent: equity x min(budget, style cap, Kelly) / stop distance."""
    if request.risk_budget_pct is None:  # the event's validator already refuses this
        raise ValueError("an order without quantity needs risk_budget_pct for risk to size")
    distance, source = stop_distance(request, portfolio, limits)
    if distance is None:
        return Sizing(
            0.0,
            Verdict(
                "sizing",
                False,
                "the order has no stop and risk has no ATR yet: it cannot be sized",
                {"stop_source": source},
            ),
        )
    cap_pct = limits.risk_cap_pct(request.strategy, request.style)
    budget_pct = min(request.risk_budget_pct, cap_pct)
    fraction = budget_pct / 100.0
    sized_by = (
        SizingConstraint.RISK_BUDGET.value
        if request.risk_budget_pct <= cap_pct
        else "risk_per_trade"
    )
    values: dict[str, ScalarValue] = {
        "risk_budget_pct": request.risk_budget_pct,
        "style_cap_pct": cap_pct,
        "stop_distance": _round(distance),
        "stop_source": source,
    }
    if request.win_probability is not None:
        kelly, kelly_values = _kelly(request, request.win_probability, distance, source, limits)
        values.update(kelly_values)
        if kelly <= 0.0:
            return Sizing(0.0, _no_edge(request, values))
        if kelly < fraction:
            fraction, sized_by = kelly, SizingConstraint.KELLY.value
    equity = max(portfolio.equity, 0.0)
    units = _floor_to_increment(
        position_size(equity, fraction, distance), limits.quantity_increment
    )
    values.update({"risk_fraction": _round(fraction), "units": _round(units)})
    if units <= _EPSILON:
        return Sizing(
            0.0,
            Verdict(
                "sizing",
                False,
                f"equity {equity:.2f} x {fraction:.4%} at a stop {distance:.6g} away is less "
                f"than one increment of {limits.quantity_increment:g}",
                values,
            ),
        )
    return Sizing(units, Verdict("sizing", True, "sized from the risk budget", values), sized_by)


def check_risk_per_trade(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse a resulting position whose loss at the stop exceeds the strategy's cap."""
    if shrinks_exposure(request, portfolio) and not grows_strategy_position(request, portfolio):
        return passed("risk_per_trade")
    distance, source = stop_distance(request, portfolio, limits)
    if distance is None:
        return Verdict(
            "risk_per_trade", True, "no stop and no ATR: not measurable", {"stop_source": source}
        )
    # the stop protects the strategy's own position, whatever the other strategies hold
    after = max(
        abs(portfolio.after(request.symbol, request.side, _quantity(request))),
        abs(_strategy_after(request, portfolio)),
    )
    at_risk = after * distance
    cap_pct = limits.risk_cap_pct(request.strategy, request.style)
    limit = portfolio.equity * cap_pct / 100.0
    values: dict[str, ScalarValue] = {
        "at_risk": _round(at_risk),
        "limit": _round(limit),
        "limit_pct": cap_pct,
        "stop_distance": _round(distance),
        "stop_source": source,
        "position_after": after,
    }
    if at_risk > limit + _EPSILON:
        return Verdict(
            "risk_per_trade",
            False,
            f"loss at the stop {at_risk:.2f} would exceed {limit:.2f} "
            f"({cap_pct}% of equity {portfolio.equity:.2f})",
            values,
        )
    return Verdict("risk_per_trade", True, values=values)


def check_position_notional(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse a resulting position whose notional exceeds its share of equity."""
    # the account's net position and the strategy's own: brackets close each strategy's
    # position on its own, so netting against another strategy does not bound the exposure
    account_after = portfolio.after(request.symbol, request.side, _quantity(request))
    strategy_after = _strategy_after(request, portfolio)
    after = max(account_after, strategy_after, key=abs)
    notional = abs(after) * request.reference_price
    limit = portfolio.equity * limits.max_position_notional_pct / 100.0
    if notional > limit and (
        not shrinks_exposure(request, portfolio) or grows_strategy_position(request, portfolio)
    ):
        return Verdict(
            "max_position_notional",
            False,
            f"position notional {notional:.2f} would exceed {limit:.2f} "
            f"({limits.max_position_notional_pct}% of equity {portfolio.equity:.2f})",
            {
                "notional": _round(notional),
                "limit": _round(limit),
                "equity": _round(portfolio.equity),
                "position_after": after,
            },
        )
    return passed("max_position_notional")


def check_open_positions(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse opening a new symbol beyond the maximum number of open positions."""
    opens_new = abs(portfolio.projected_quantity(request.symbol)) < _EPSILON
    count = portfolio.open_position_count()
    if opens_new and count >= limits.max_open_positions:
        return Verdict(
            "max_open_positions",
            False,
            f"{count} positions are open; the limit is {limits.max_open_positions}",
            {"open_positions": count, "limit": limits.max_open_positions},
        )
    return passed("max_open_positions")


def check_gross_leverage(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse an order that takes gross exposure / equity above the leverage limit."""
    if shrinks_exposure(request, portfolio):
        return passed("gross_leverage")
    gross = sum(map(abs, _projected_notionals(request, portfolio).values()))
    leverage = gross / portfolio.equity if portfolio.equity > 0 else math.inf
    if leverage > limits.max_gross_leverage + _EPSILON:
        return Verdict(
            "gross_leverage",
            False,
            f"gross leverage {leverage:.2f}x would exceed {limits.max_gross_leverage}x",
            {
                "gross_exposure": _round(gross),
                "equity": _round(portfolio.equity),
                "leverage": _round(leverage) if math.isfinite(leverage) else "inf",
                "limit": limits.max_gross_leverage,
            },
        )
    return passed("gross_leverage")


def check_margin_utilisation(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse an order that takes margin used / equity above the limit."""
    if shrinks_exposure(request, portfolio):
        return passed("margin_utilisation")
    margin = sum(
        [
            abs(notional) * limits.margin_rate(symbol)
            for symbol, notional in _projected_notionals(request, portfolio).items()
        ]
    )
    utilisation = margin / portfolio.equity * 100.0 if portfolio.equity > 0 else math.inf
    if utilisation > limits.max_margin_utilisation_pct + _EPSILON:
        return Verdict(
            "margin_utilisation",
            False,
            f"margin utilisation {utilisation:.2f}% would exceed "
            f"{limits.max_margin_utilisation_pct}%",
            {
                "margin": _round(margin),
                "equity": _round(portfolio.equity),
                "utilisation_pct": _round(utilisation) if math.isfinite(utilisation) else "inf",
                "limit_pct": limits.max_margin_utilisation_pct,
            },
        )
    return passed("margin_utilisation")


def check_correlated_exposure(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse an order that takes the |notional| of its correlated group above the limit.

    Groups link symbols with |rho| >= the threshold over the lookback's returns (transitively);
    a symbol without enough history forms its own group.
    """
    if shrinks_exposure(request, portfolio):
        return passed("correlated_exposure")
    notionals = _projected_notionals(request, portfolio)
    group: tuple[str, ...] = (request.symbol,)
    symbols = tuple(sorted(notionals))
    if len(symbols) > 1:
        latest = portfolio.market.latest_time()
        since = None if latest is None else latest - timedelta(days=limits.return_lookback_days)
        returns = portfolio.market.returns(symbols, since)
        if len(returns) >= limits.min_return_observations and returns.shape[1] > 1:
            groups = portfolio.market.memo(
                ("correlation_groups", symbols, since, limits.correlation_threshold),
                lambda: correlation_groups(returns.corr(), limits.correlation_threshold),
            )
            for members in groups:
                if request.symbol in members:
                    group = members
    exposure = sum([abs(notionals.get(symbol, 0.0)) for symbol in group])
    limit = portfolio.equity * limits.max_correlated_exposure_pct / 100.0
    if exposure > limit + _EPSILON:
        return Verdict(
            "correlated_exposure",
            False,
            f"exposure {exposure:.2f} of the group {'/'.join(group)} would exceed {limit:.2f} "
            f"({limits.max_correlated_exposure_pct}% of equity)",
            {
                "group": ",".join(group)[:256],
                "exposure": _round(exposure),
                "limit": _round(limit),
                "threshold": limits.correlation_threshold,
            },
        )
    return Verdict("correlated_exposure", True, values={"group": ",".join(group)[:256]})


def tail_risks(
    notionals: dict[str, float],
    portfolio: PortfolioState,
    limits: RiskLimits,
    confidences: tuple[float, ...],
) -> list[RiskEstimate] | None:
    """Return the horizon VaR/ES of signed notionals per confidence, or None without history.

    Historical and parametric estimates come from one P&L series (the returns matrix times
    the notionals: the parametric mean and standard deviation of that series equal w'mu and
    sqrt(w' Sigma w)); Monte Carlo simulates from the returns' mean and covariance with a
    fixed seed. Per-bar figures are scaled to the horizon by the square root of time (bars per
    horizon), using the longest bar interval among the symbols.
    """
    symbols = tuple(sorted(notionals))
    market_symbols = portfolio.market.symbols
    if not symbols or any(symbol not in market_symbols for symbol in symbols):
        return None  # a symbol without bars has no returns column: no aligned history
    latest = portfolio.market.latest_time()
    since = None if latest is None else latest - timedelta(days=limits.return_lookback_days)
    returns = portfolio.market.returns(symbols, since)
    if len(returns) < limits.min_return_observations or returns.shape[1] != len(symbols):
        return None
    interval = max(portfolio.market.symbols[symbol].interval for symbol in symbols)
    scale = math.sqrt(timedelta(days=limits.var_horizon_days) / interval)
    if limits.var_method is RiskMethod.MONTE_CARLO:
        estimates = [
            portfolio_risk(
                returns,
                notionals,
                confidence,
                RiskMethod.MONTE_CARLO,
                rng=np.random.default_rng(limits.monte_carlo_seed),
                simulations=limits.monte_carlo_simulations,
            )
            for confidence in confidences
        ]
    else:
        weights = np.array([notionals[str(symbol)] for symbol in returns.columns])
        profit_and_loss = returns.to_numpy(dtype=np.float64) @ weights
        estimator = (
            historical_risk if limits.var_method is RiskMethod.HISTORICAL else parametric_risk
        )
        estimates = [estimator(profit_and_loss, confidence) for confidence in confidences]
    return [
        RiskEstimate(
            estimate.value_at_risk * scale,
            estimate.expected_shortfall * scale,
            estimate.confidence,
            limits.var_method,
        )
        for estimate in estimates
    ]


def tail_risk(
    notionals: dict[str, float], portfolio: PortfolioState, limits: RiskLimits, confidence: float
) -> RiskEstimate | None:
    """Return the horizon VaR/ES at one confidence (see :func:`tail_risks`)."""
    estimates = tail_risks(notionals, portfolio, limits, (confidence,))
    return None if estimates is None else estimates[0]


def check_value_at_risk(
    request: OrderRequested, portfolio: PortfolioState, limits: RiskLimits
) -> Verdict:
    """Refuse an order that takes portfolio VaR or CVaR (candidate included) above the limits."""
    if shrinks_exposure(request, portfolio):
        return passed("value_at_risk")
    notionals = _projected_notionals(request, portfolio)
    estimates = tail_risks(
        notionals, portfolio, limits, (limits.var_confidence, limits.cvar_confidence)
    )
    if estimates is None:
        return Verdict(
            "value_at_risk",
            True,
            "not enough aligned return history: VaR not measured",
            {"min_observations": limits.min_return_observations},
        )
    var_estimate, cvar_estimate = estimates
    var_limit = portfolio.equity * limits.max_var_pct / 100.0
    cvar_limit = portfolio.equity * limits.max_cvar_pct / 100.0
    values: dict[str, ScalarValue] = {
        "method": limits.var_method.value,
        "var": _round(var_estimate.value_at_risk),
        "var_confidence": limits.var_confidence,
        "var_limit": _round(var_limit),
        "cvar": _round(cvar_estimate.expected_shortfall),
        "cvar_confidence": limits.cvar_confidence,
        "cvar_limit": _round(cvar_limit),
    }
    if var_estimate.value_at_risk > var_limit + _EPSILON:
        return Verdict(
            "value_at_risk",
            False,
            f"portfolio VaR {limits.var_confidence:.1%} {var_estimate.value_at_risk:.2f} would "
            f"exceed {var_limit:.2f} ({limits.max_var_pct}% of equity)",
            values,
        )
    if cvar_estimate.expected_shortfall > cvar_limit + _EPSILON:
        return Verdict(
            "expected_shortfall",
            False,
            f"portfolio CVaR {limits.cvar_confidence:.1%} {cvar_estimate.expected_shortfall:.2f}"
            f" would exceed {cvar_limit:.2f} ({limits.max_cvar_pct}% of equity)",
            values,
        )
    return Verdict("value_at_risk", True, values=values)
