"""Trading costs: bid-ask spread, slippage and commission (per trade, per unit, % of notional).

Shared by the event-driven and the vectorised engines so both compute bit-identical prices.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CostModel(BaseModel):
    """What a fill costs; every default is zero (a frictionless market)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    commission_rate: float = Field(
        default=0.0, ge=0, lt=0.1, description="commission, fraction of each fill's notional"
    )
    commission_per_unit: float = Field(
        default=0.0, ge=0, description="commission per unit traded, account currency"
    )
    commission_per_trade: float = Field(
        default=0.0, ge=0, description="fixed commission per fill (ticket), account currency"
    )
    spread: float = Field(
        default=0.0, ge=0, description="full bid-ask spread in price units; buys pay half of it"
    )
    slippage_bps: float = Field(
        default=0.0, ge=0, le=1000, description="adverse slippage, basis points of price"
    )

    def fill_price(self, side_sign: int, price: float) -> float:
        """Return the price a buy (+1) or sell (-1) really gets when the market trades at price."""
        if not self.spread and not self.slippage_bps:
            return price
        adverse = self.spread / 2.0 + price * self.slippage_bps / 10_000.0
        return price + side_sign * adverse

    def commission(self, quantity: float, price: float) -> float:
        """Return the commission of one fill of ``quantity`` units at ``price``."""
        size = abs(quantity)
        return (
            self.commission_per_trade
            + size * price * self.commission_rate
            + size * self.commission_per_unit
        )
