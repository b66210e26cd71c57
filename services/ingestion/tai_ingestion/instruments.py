"""One instrument naming for the system (``EURUSD``), mapped to each source's own names.

Each instrument class has one bar convention, which every source's bars are brought to
before validation (docs/runbook.md, "Market data conventions"):

- Time: intraday bars open on the UTC grid of their timeframe (1h bars on the whole UTC
  hour, whatever the exchange's session open: a source whose hourly bars open at :30 is read
  at 15 minutes and re-bucketed); daily bars are labelled 00:00 UTC of their trading date
  (the date in the source's own day, e.g. London midnight for Yahoo FX, the session date for
  equities).
- Prices: as traded, never restated (no split or dividend adjustment), so a stored bar stays
  true after a later corporate action.
- Hours: the regular session only (equities 09:30-16:00 exchange time; FX its 24/5 week).

Sources declare the basis they deliver (``PriceBasis``); the failover never takes bars from
a source whose basis differs from the instrument's convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class AssetClass(StrEnum):
    """What kind of market an instrument trades in (decides its trading calendar)."""

    FX = "fx"
    EQUITY = "equity"


class PriceAdjustment(StrEnum):
    """How a source's prices relate to what was traded."""

    AS_TRADED = "as_traded"
    SPLIT_ADJUSTED = "split_adjusted"
    SPLIT_AND_DIVIDEND_ADJUSTED = "split_and_dividend_adjusted"


class TradingHours(StrEnum):
    """Which part of the trading day a source's bars cover."""

    REGULAR = "regular"
    EXTENDED = "extended"


@dataclass(frozen=True, slots=True)
class PriceBasis:
    """What a series of bars means: its price adjustment and the hours it covers."""

    adjustment: PriceAdjustment
    hours: TradingHours

    def describe(self) -> str:
        """Return e.g. ``as_traded/regular``."""
        return f"{self.adjustment.value}/{self.hours.value}"


CONVENTION = PriceBasis(PriceAdjustment.AS_TRADED, TradingHours.REGULAR)
"""The basis of every stored and published bar, for every instrument class."""


class Instrument(BaseModel):
    """An instrument and its name at every source; a missing name means "not offered there"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = Field(pattern=r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
    asset_class: AssetClass
    yfinance_ticker: str | None = None
    alpha_vantage_symbol: str | None = Field(
        default=None, description="equity ticker (TIME_SERIES_*); FX uses the currencies"
    )
    base_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    quote_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    ig_epic: str | None = None
    exchange_timezone: str = Field(
        default="America/New_York", description="timezone of the equity session"
    )


def fx_pair(symbol: str, *, ig_epic: str | None = None) -> Instrument:
    """Return an FX pair with the usual names: ``EURUSD`` -> ``EURUSD=X``, EUR/USD, CS.D epic."""
    base, quote = symbol[:3], symbol[3:6]
    return Instrument(
        symbol=symbol,
        asset_class=AssetClass.FX,
        yfinance_ticker=f"{symbol}=X",
        base_currency=base,
        quote_currency=quote,
        ig_epic=ig_epic or f"CS.D.{symbol}.MINI.IP",
    )


def equity(symbol: str, *, ig_epic: str | None = None) -> Instrument:
    """Return a US-listed equity known by its ticker everywhere."""
    return Instrument(
        symbol=symbol,
        asset_class=AssetClass.EQUITY,
        yfinance_ticker=symbol,
        alpha_vantage_symbol=symbol,
        ig_epic=ig_epic,
    )


def default_instruments() -> dict[str, Instrument]:
    """Return the instruments known out of the box (settings may add or override any)."""
    instruments = [
        fx_pair("EURUSD"),
        fx_pair("GBPUSD"),
        fx_pair("USDJPY"),
        fx_pair("AUDUSD"),
        fx_pair("USDCHF"),
        equity("GOOG"),
        equity("AAPL"),
        equity("MSFT"),
    ]
    return {instrument.symbol: instrument for instrument in instruments}


def convention(instrument: Instrument) -> PriceBasis:
    """Return the price basis bars of ``instrument`` must have (one per instrument class)."""
    del instrument  # the same for FX (whose regular hours are its 24/5 week) and equities
    return CONVENTION


class UnknownInstrumentError(KeyError):
    """The system's symbol has no instrument definition."""


class InstrumentMap:
    """Look up instruments by the system's symbol."""

    def __init__(self, instruments: dict[str, Instrument]) -> None:
        self._instruments = dict(instruments)

    @classmethod
    def with_overrides(cls, overrides: dict[str, Instrument] | None = None) -> InstrumentMap:
        """Return the defaults with ``overrides`` replacing or adding instruments."""
        return cls({**default_instruments(), **(overrides or {})})

    def get(self, symbol: str) -> Instrument:
        """Return the instrument, or raise UnknownInstrumentError naming the symbol."""
        try:
            return self._instruments[symbol]
        except KeyError:
            known = ", ".join(sorted(self._instruments))
            raise UnknownInstrumentError(f"unknown instrument {symbol!r}; known: {known}") from None

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._instruments
